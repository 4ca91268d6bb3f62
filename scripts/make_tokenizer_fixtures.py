#!/usr/bin/env python3
"""Generate the tokenizer conformance fixtures in tests/fixtures/tokenizer/.

Every expected value is produced by the reference libraries:
  - transformers 5 `CLIPTokenizer` (== v4 `CLIPTokenizerFast`), built from vocab/merges
    rebuilt out of OpenAI's `bpe_simple_vocab_16e6.txt.gz` exactly as in
    clip-spec.md section 1.2;
  - open_clip's `SimpleTokenizer` (OpenAI's tokenizer with ftfy + html.unescape).

Seeded and re-runnable: `python scripts/make_tokenizer_fixtures.py`. The output is
deterministic for the pinned versions below (checked at start-up).

Files written:
  versions.json        library versions and corpus statistics
  corpus.jsonl         one line per string:
                         t   the text
                         ids transformers ids, no padding, no truncation (BOS/EOS included)
                         t77 transformers ids with truncation=True, max_length=77, padding
                             "max_length", with the padding removed; only present when it
                             differs from `ids` (i.e. the text is longer than 77 tokens).
                             The script asserts that the padding is 49407 and the mask is
                             ones for exactly these ids, so the test rebuilds padding/mask.
                         oc  open_clip.tokenize(t) row with the zero padding removed, only
                             when ftfy.fix_text and html.unescape x2 leave t unchanged
  batches.jsonl        a few batches encoded with padding="longest" (+ truncation)
  decode.jsonl         decode(ids, skip_special_tokens) results
  differences.jsonl    curated inputs where OpenAI/open_clip and transformers disagree
  small/               a small hand-made vocabulary (512 byte symbols + the first 2,000
                       merges + specials) saved by transformers as tokenizer.json, plus
                       vocab.json/merges.txt/tokenizer_config.json and its expected ids.
"""
import gzip
import html
import json
import os
import random
import shutil
import sys
import tempfile

import ftfy
import open_clip
import tokenizers
import transformers
from open_clip.tokenizer import SimpleTokenizer
from transformers import CLIPTokenizerFast

PINNED = {
    "transformers": "5.24.0",
    "tokenizers": "0.23.3",
    "open_clip_torch": "3.3.0",
    "ftfy": "6.3.1",
}
ACTUAL = {
    "transformers": transformers.__version__,
    "tokenizers": tokenizers.__version__,
    "open_clip_torch": open_clip.__version__,
    "ftfy": ftfy.__version__,
}
for k, v in PINNED.items():
    if ACTUAL[k] != v:
        sys.exit(f"pinned {k}=={v}, found {ACTUAL[k]}")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "tokenizer")
GZ = os.path.join(os.path.dirname(open_clip.__file__), "bpe_simple_vocab_16e6.txt.gz")
BOS, EOS = 49406, 49407


# ---------------------------------------------------------------- vocab/merges (spec 1.1, 1.2)
def bytes_to_unicode():
    bs = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def build_vocab_merges(n_merges=48894):
    lines = gzip.open(GZ).read().decode("utf-8").split("\n")
    merges = lines[1 : 1 + n_merges]
    base = list(bytes_to_unicode().values())
    vocab = base + [b + "</w>" for b in base] + ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(vocab)}, merges


def write_vocab_merges(d, vocab, merges):
    with open(os.path.join(d, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(d, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")


# ---------------------------------------------------------------- corpus
IMAGENET = """tench goldfish great white shark tiger shark hammerhead electric ray stingray cock hen
ostrich brambling goldfinch house finch junco indigo bunting robin bulbul jay magpie chickadee
water ouzel kite bald eagle vulture great grey owl fire salamander common newt eft
spotted salamander axolotl bullfrog tree frog tailed frog loggerhead leatherback turtle mud turtle
terrapin box turtle banded gecko common iguana American chameleon whiptail agama frilled lizard
alligator lizard Gila monster green lizard African chameleon Komodo dragon African crocodile
American alligator triceratops thunder snake ringneck snake hognose snake green snake king snake
garter snake water snake vine snake night snake boa constrictor rock python Indian cobra green mamba
sea snake horned viper diamondback sidewinder trilobite harvestman scorpion black and gold garden spider
barn spider garden spider black widow tarantula wolf spider tick centipede black grouse ptarmigan
ruffed grouse prairie chicken peacock quail partridge African grey macaw sulphur-crested cockatoo
lorikeet coucal bee eater hornbill hummingbird jacamar toucan drake red-breasted merganser goose
black swan tusker echidna platypus wallaby koala wombat jellyfish sea anemone brain coral flatworm
nematode conch snail slug sea slug chiton chambered nautilus Dungeness crab rock crab fiddler crab
king crab American lobster spiny lobster crayfish hermit crab isopod white stork black stork
spoonbill flamingo little blue heron American egret bittern crane limpkin European gallinule
American coot bustard ruddy turnstone red-backed sandpiper redshank dowitcher oystercatcher pelican
king penguin albatross grey whale killer whale dugong sea lion Chihuahua Japanese spaniel Maltese dog
Pekinese Shih-Tzu Blenheim spaniel papillon toy terrier Rhodesian ridgeback Afghan hound basset beagle
bloodhound bluetick black-and-tan coonhound Walker hound English foxhound redbone borzoi Irish wolfhound
Italian greyhound whippet Ibizan hound Norwegian elkhound otterhound Saluki Scottish deerhound Weimaraner
Staffordshire bullterrier American Staffordshire terrier Bedlington terrier Border terrier Kerry blue terrier
Irish terrier Norfolk terrier Norwich terrier Yorkshire terrier wire-haired fox terrier Lakeland terrier
Sealyham terrier Airedale cairn Australian terrier Dandie Dinmont Boston bull miniature schnauzer
giant schnauzer standard schnauzer Scotch terrier Tibetan terrier silky terrier soft-coated wheaten terrier
West Highland white terrier Lhasa flat-coated retriever curly-coated retriever golden retriever
Labrador retriever Chesapeake Bay retriever German short-haired pointer vizsla English setter Irish setter
Gordon setter Brittany spaniel clumber English springer Welsh springer spaniel cocker spaniel Sussex spaniel
Irish water spaniel kuvasz schipperke groenendael malinois briard kelpie komondor Old English sheepdog
Shetland sheepdog collie Border collie Bouvier des Flandres Rottweiler German shepherd Doberman
miniature pinscher Greater Swiss Mountain dog Bernese mountain dog Appenzeller EntleBucher boxer
bull mastiff Tibetan mastiff French bulldog Great Dane Saint Bernard Eskimo dog malamute Siberian husky
dalmatian affenpinscher basenji pug Leonberg Newfoundland Great Pyrenees Samoyed Pomeranian chow keeshond
Brabancon griffon Pembroke Cardigan toy poodle miniature poodle standard poodle Mexican hairless timber wolf
white wolf red wolf coyote dingo dhole African hunting dog hyena red fox kit fox Arctic fox grey fox tabby
tiger cat Persian cat Siamese cat Egyptian cat cougar lynx leopard snow leopard jaguar lion tiger cheetah
brown bear American black bear ice bear sloth bear mongoose meerkat tiger beetle ladybug ground beetle
long-horned beetle leaf beetle dung beetle rhinoceros beetle weevil fly bee ant grasshopper cricket
walking stick cockroach mantis cicada leafhopper lacewing dragonfly damselfly admiral ringlet monarch
cabbage butterfly sulphur butterfly lycaenid starfish sea urchin sea cucumber wood rabbit hare Angora
hamster porcupine fox squirrel marmot beaver guinea pig sorrel zebra hog wild boar warthog hippopotamus ox
water buffalo bison ram bighorn ibex hartebeest impala gazelle Arabian camel llama weasel mink polecat
black-footed ferret otter skunk badger armadillo three-toed sloth orangutan gorilla chimpanzee gibbon
siamang guenon patas baboon macaque langur colobus proboscis monkey marmoset capuchin howler monkey titi
spider monkey squirrel monkey Madagascar cat indri Indian elephant African elephant lesser panda
giant panda barracouta eel coho rock beauty anemone fish sturgeon gar lionfish puffer abacus abaya
academic gown accordion acoustic guitar aircraft carrier airliner airship altar ambulance amphibian
analog clock apiary apron ashcan assault rifle backpack bakery balance beam balloon ballpoint Band Aid
banjo bannister barbell barber chair barbershop barn barometer barrel barrow baseball basketball bassinet
bassoon bathing cap bath towel bathtub beach wagon beacon beaker bearskin beer bottle beer glass bell cote
bib bicycle-built-for-two bikini binder binoculars birdhouse boathouse bobsled bolo tie bonnet bookcase
bookshop bottlecap bow bow tie brass brassiere breakwater breastplate broom bucket buckle bulletproof vest
bullet train butcher shop cab caldron candle cannon canoe can opener cardigan car mirror carousel
carpenter's kit carton car wheel cash machine cassette cassette player castle catamaran CD player cello
cellular telephone chain chainlink fence chain mail chain saw chest chiffonier chime china cabinet
Christmas stocking church cinema cleaver cliff dwelling cloak clog cocktail shaker coffee mug coffeepot
coil combination lock computer keyboard confectionery container ship convertible corkscrew cornet
cowboy boot cowboy hat cradle crane crash helmet crate crib Crock Pot croquet ball crutch cuirass dam desk
desktop computer dial telephone diaper digital clock digital watch dining table dishrag dishwasher
disk brake dock dogsled dome doormat drilling platform drum drumstick dumbbell Dutch oven electric fan
electric guitar electric locomotive entertainment center envelope espresso maker face powder feather boa
file fireboat fire engine fire screen flagpole flute folding chair football helmet forklift fountain
fountain pen four-poster freight car French horn frying pan fur coat garbage truck gasmask gas pump goblet
go-kart golf ball golfcart gondola gong gown grand piano greenhouse grille grocery store guillotine
hair slide hair spray half track hammer hamper hand blower hand-held computer handkerchief hard disc
harmonica harp harvester hatchet holster home theater honeycomb hook hoopskirt horizontal bar horse cart
hourglass iPod iron jack-o'-lantern jean jeep jersey jigsaw puzzle jinrikisha joystick kimono knee pad knot
lab coat ladle lampshade laptop lawn mower lens cap letter opener library lifeboat lighter limousine liner
lipstick Loafer lotion loudspeaker loupe lumbermill magnetic compass mailbag mailbox maillot manhole cover
maraca marimba mask matchstick maypole maze measuring cup medicine chest megalith microphone microwave
military uniform milk can minibus miniskirt minivan missile mitten mixing bowl mobile home Model T modem
monastery monitor moped mortar mortarboard mosque mosquito net motor scooter mountain bike mountain tent
mouse mousetrap moving van muzzle nail neck brace necklace nipple notebook obelisk oboe ocarina odometer
oil filter organ oscilloscope overskirt oxcart oxygen mask packet paddle paddlewheel padlock paintbrush
pajama palace panpipe paper towel parachute parallel bars park bench parking meter passenger car patio
pay-phone pedestal pencil box pencil sharpener perfume Petri dish photocopier pick pickelhaube picket fence
pickup pier piggy bank pill bottle pillow ping-pong ball pinwheel pirate pitcher plane planetarium
plastic bag plate rack plow plunger Polaroid camera pole police van poncho pool table pop bottle pot
potter's wheel power drill prayer rug printer prison projectile projector puck punching bag purse quill
quilt racer racket radiator radio radio telescope rain barrel recreational vehicle reel reflex camera
refrigerator remote control restaurant revolver rifle rocking chair rotisserie rubber eraser rugby ball
rule running shoe safe safety pin saltshaker sandal sarong sax scabbard scale school bus schooner
scoreboard screen screw screwdriver seat belt sewing machine shield shoe shop shoji shopping basket
shopping cart shovel shower cap shower curtain ski ski mask sleeping bag slide rule sliding door slot
snorkel snowmobile snowplow soap dispenser soccer ball sock solar dish sombrero soup bowl space bar
space heater space shuttle spatula speedboat spider web spindle sports car spotlight stage steam locomotive
steel arch bridge steel drum stethoscope stole stone wall stopwatch stove strainer streetcar stretcher
studio couch stupa submarine suit sundial sunglass sunglasses sunscreen suspension bridge swab sweatshirt
swimming trunks swing switch syringe table lamp tank tape player teapot teddy television tennis ball
thatch theater curtain thimble thresher throne tile roof toaster tobacco shop toilet seat torch totem pole
tow truck toyshop tractor trailer truck tray trench coat tricycle trimaran tripod triumphal arch trolleybus
trombone tub turnstile typewriter keyboard umbrella unicycle upright vacuum vase vault velvet vending machine
vestment viaduct violin volleyball waffle iron wall clock wallet wardrobe warplane washbasin washer
water bottle water jug water tower whiskey jug whistle wig window screen window shade Windsor tie wine bottle
wing wok wooden spoon wool worm fence wreck yawl yurt web site comic book crossword puzzle street sign
traffic light book jacket menu plate guacamole consomme hot pot trifle ice cream ice lolly French loaf
bagel pretzel cheeseburger hotdog mashed potato head cabbage broccoli cauliflower zucchini spaghetti squash
acorn squash butternut squash cucumber artichoke bell pepper cardoon mushroom Granny Smith strawberry
orange lemon fig pineapple banana jackfruit custard apple pomegranate hay carbonara chocolate sauce dough
meat loaf pizza potpie burrito red wine espresso cup eggnog alp bubble cliff coral reef geyser lakeside
promontory sandbar seashore valley volcano ballplayer groom scuba diver rapeseed daisy yellow lady's slipper
corn acorn hip buckeye coral fungus agaric gyromitra stinkhorn earthstar hen-of-the-woods bolete ear
toilet tissue"""


def imagenet_classes():
    # Greedy phrase list: split the blob into words, then group into 1-3 word names
    # deterministically (exact ImageNet names are not needed; variety is).
    words = IMAGENET.split()
    rng = random.Random(7)
    out, i = [], 0
    while i < len(words):
        k = rng.choice([1, 1, 2, 2, 3])
        out.append(" ".join(words[i : i + k]))
        i += k
    return out


TEMPLATES = [
    "a photo of a {}.",
    "a bad photo of a {}.",
    "a sculpture of a {}.",
    "a rendering of the {}.",
    "itap of a {}.",
    "a close-up photo of the {}.",
    "art of the {}.",
    "a photo of the small {}.",
    "a tattoo of the {}.",
    "A PHOTO OF A {}!",
]

CAPTIONS = [
    "A man riding a wave on top of a surfboard.",
    "Two dogs playing in the snow with a red ball.",
    "A plate of food with broccoli, rice and chicken.",
    "An old black-and-white photograph of a 1920s street in Paris.",
    "The cat is sleeping on the laptop keyboard :)",
    "a group of people standing around a table with laptops",
    "A kitchen with stainless steel appliances and granite counter tops",
    "there's a giraffe eating leaves from a tall tree",
    "we'll see, they've said I'd've, you're, it's, I'm, she'll, he'd",
    "Don't WON'T can't SHAN'T Y'ALL O'Neill rock'n'roll",
    "'single quoted' and \"double quoted\" and `backticks`",
    "3.14159 is pi; 2,718 is e-ish; 1e10; 0x1F; 100% #1 $5.99 @user",
    "2024-01-31T12:34:56Z, 12/31/1999, +1 (555) 123-4567",
    "email: someone@example.com, url: https://example.com/path?q=1&r=2#frag",
    "C++ vs. C# vs. F#; a->b; x<=y; a==b; !=; ...; ---; ***",
    "HTML: &amp; &lt;b&gt; &nbsp; &#39; &#x263a; &amp;amp; &copy2024 &notice",
    "<b>bold</b> <i>italic</i> <br/> <a href=\"x\">link</a>",
    "Café résumé naïve coöperate façade jalapeño Ångström",
    "cafe\u0301 re\u0301sume\u0301 (NFD)",
    "中文测试 日本語のテキスト 한국어 텍스트",
    "مرحبا بالعالم — שלום עולם",
    "Привет, мир! Ελληνικά: ΣΊΣΥΦΟΣ, ΟΔΥΣΣΕΥΣ σοφός",
    "emoji 😀😃😄 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 🇫🇷🇯🇵 ❤️ ✨",
    "doesnâ€™t Ã©tÃ© mojibake",
    "curly “quotes” and ‘single’ it’s",
    "ligatures ﬁ ﬂ fullwidth １２３ＡＢＣ，！ halfwidth ｶﾀｶﾅ",
    "Ǆ ǅ ǆ Ǳ ǲ İstanbul ß ẞ ﬀ",
    "tabs\tand\nnewlines\r\nand\u00a0nbsp\u3000ideographic\u2028line\u2029para",
    "zero\u200bwidth\u200djoiner\u00adsoft\ufeffbom",
    "controls \x00 \x07 \x1c\x1d\x1e\x1f \x7f \x85",
    "<|startoftext|>a photo<|endoftext|>",
    "<|ENDOFTEXT|> <|EndOfText|> <|startOFtext|>",
    "<start_of_text>hello<end_of_text> <END_OF_TEXT>",
    "<|endoftext|><|endoftext|><|startoftext|>",
    "",
    " ",
    "   leading and trailing   ",
    "\t\n",
    "a",
    "A",
    "!",
    "'s",
    "''s'''",
    "a photo of a cat",
    "Hello, World! it's",
]


def long_texts(rng):
    out = []
    words = IMAGENET.split()
    for n in (60, 75, 76, 77, 78, 100, 200, 500):
        out.append(" ".join(rng.choice(words) for _ in range(n)))
    out.append("a " * 300)
    out.append("1234567890" * 30)
    out.append("!@#$%^&*()" * 40)
    out.append("supercalifragilisticexpialidocious" * 20)
    out.append("😀" * 120)
    out.append("中" * 400)
    return out


SPACES = ["\t", "\n", "\x0b", "\x0c", "\r", " ", "\x85", "\xa0", "\u1680"] + [chr(c) for c in range(0x2000, 0x200B)] + [
    "\u2028", "\u2029", "\u202f", "\u205f", "\u3000", "\x1c", "\x1d", "\x1e", "\x1f", "\u200b", "\ufeff", "\u180e"]
POOLS = [
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "0123456789",
    "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
    "".join(SPACES),
    "àáâãäåæçèéêëìíîïðñòóôõöøùúûüýþÿÀÉÎÕÜßœŒſ",
    "\u0300\u0301\u0302\u0308\u0327\u0345\u20dd\u0489",
    "ΑΒΓΔΣσςΊΥΦΟαβγδ",
    "АБВГДабвгдЁё",
    "中文测试日本語한국어ｶﾀｶﾅ",
    "مرحبا שלום",
    "😀👍🏽👨👩👧\u200d\ufe0f🏳🌈🇫🇷🇯🇵❤✨",
    "\x00\x01\x07\x08\x1b\x7f\x80\x9f",
    "ﬁﬂ１２３ＡＢＣ，！“”‘’«»—–…",
    "²³½¼٣٤߁০१Ⅷⅻ",
    "ǄǅǆǱǲİıẞ",
]
PIECES = ["<|startoftext|>", "<|endoftext|>", "<|ENDOFTEXT|>", "<|StartOfText|>", "<start_of_text>",
          "<end_of_text>", "'s", "'S", "'ll", "'LL", "'re", "'ve", "'m", "'d", "'t", "&amp;", "&lt;",
          "</w>", "a photo of a ", "Ġ", "ĠĊ"]


def random_string(rng):
    n = rng.choice([1, 2, 3, 5, 8, 13, 21, 40])
    parts = []
    for _ in range(n):
        r = rng.random()
        if r < 0.08:
            parts.append(rng.choice(PIECES))
        elif r < 0.15:
            # random BMP code point from long-assigned ranges (avoids Unicode-version drift)
            c = rng.choice([rng.randint(0x20, 0x2FF), rng.randint(0x370, 0x52F), rng.randint(0x590, 0x6FF),
                            rng.randint(0x900, 0xDFF), rng.randint(0x1E00, 0x1FFF), rng.randint(0x2000, 0x2BFF),
                            rng.randint(0x3000, 0x30FF), rng.randint(0x4E00, 0x9FA5), rng.randint(0xAC00, 0xD7A3),
                            rng.randint(0xF900, 0xFAFF), rng.randint(0xFB00, 0xFFEF)])
            parts.append(chr(c))
        else:
            pool = rng.choice(POOLS)
            parts.append("".join(rng.choice(pool) for _ in range(rng.randint(1, 6))))
    return "".join(parts)


def build_corpus():
    rng = random.Random(20240601)
    corpus = []
    for c in imagenet_classes():
        for t in rng.sample(TEMPLATES, 3):
            corpus.append(t.format(c))
    corpus += CAPTIONS
    corpus += long_texts(rng)
    # casing variants of captions
    for c in CAPTIONS[:20]:
        corpus += [c.upper(), c.title(), c.swapcase()]
    while len(corpus) < 2600:
        corpus.append(random_string(rng))
    # de-duplicate, keep order
    seen, out = set(), []
    for s in corpus:
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out


def oc_unchanged(s):
    return ftfy.fix_text(s) == s and html.unescape(html.unescape(s)) == s


def dumps(o):
    return json.dumps(o, ensure_ascii=False, separators=(",", ":"))


def main():
    vocab, merges = build_vocab_merges()
    assert len(vocab) == 49408 and len(merges) == 48894
    tmp = tempfile.mkdtemp()
    write_vocab_merges(tmp, vocab, merges)
    tok = CLIPTokenizerFast.from_pretrained(tmp)
    assert tok("a photo of a cat")["input_ids"] == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert tok.pad_token_id == EOS and tok.bos_token_id == BOS
    oc = SimpleTokenizer()

    corpus = build_corpus()
    n_oc = n_long = 0
    with open(os.path.join(OUT, "corpus.jsonl"), "w", encoding="utf-8") as f:
        for s in corpus:
            ids = tok(s)["input_ids"]
            rec = {"t": s, "ids": ids}
            enc = tok(s, padding="max_length", truncation=True, max_length=77)
            p_ids, mask = enc["input_ids"], enc["attention_mask"]
            assert len(p_ids) == 77 and len(mask) == 77
            n = sum(mask)
            assert mask == [1] * n + [0] * (77 - n) and all(x == EOS for x in p_ids[n:])
            if p_ids[:n] != ids:
                rec["t77"] = p_ids[:n]
                n_long += 1
            if oc_unchanged(s):
                row = oc([s])[0].tolist()
                k = min(len(oc.encode(s)) + 2, 77)
                assert all(x == 0 for x in row[k:])
                rec["oc"] = row[:k]
                n_oc += 1
            f.write(dumps(rec) + "\n")

    rng = random.Random(99)
    with open(os.path.join(OUT, "batches.jsonl"), "w", encoding="utf-8") as f:
        for _ in range(30):
            batch = rng.sample(corpus, rng.randint(1, 6))
            for trunc in (True, False):
                enc = tok(batch, padding="longest", truncation=trunc, max_length=77)
                f.write(dumps({"texts": batch, "truncation": trunc, "input_ids": enc["input_ids"],
                               "attention_mask": enc["attention_mask"]}) + "\n")

    with open(os.path.join(OUT, "decode.jsonl"), "w", encoding="utf-8") as f:
        seqs = [tok(s)["input_ids"] for s in corpus[::10]]
        seqs += [[rng.randrange(49408) for _ in range(rng.randint(0, 20))] for _ in range(150)]
        seqs += [[188 + i for i in range(33)], [0, 256, 49407, 49407, 49407], [49406], [], [290, 94, 130]]
        for ids in seqs:
            for skip in (False, True):
                f.write(dumps({"ids": ids, "skip": skip, "text": tok.decode(ids, skip_special_tokens=skip)}) + "\n")

    curated = [
        "Tom &amp; Jerry", "&lt;b&gt;bold&lt;/b&gt;", "it&#39;s", "R&amp;D &copy2024", "a < b &amp; c",
        "doesnâ€™t", "Ã©tÃ©", "it’s “quoted”", "ﬁsh ﬂour", "１２３ＡＢＣ", "ΟΔΥΣΣΕΥΣ", "Ǆemal",
        "fs\x1cgs", "nul\x00byte", "\ufeffbom", "<|endoftext|>", "<|ENDOFTEXT|>", "<end_of_text>",
        "a\u200bb", "ｶﾀｶﾅ", "hello，world！",
    ]
    with open(os.path.join(OUT, "differences.jsonl"), "w", encoding="utf-8") as f:
        for s in curated:
            hf = tok(s)["input_ids"]
            o = [BOS] + oc.encode(s) + [EOS]
            f.write(dumps({"t": s, "transformers": hf, "open_clip": o,
                           "transformers_tokens": tok.convert_ids_to_tokens(hf),
                           "open_clip_tokens": [oc.decoder[i] for i in o], "equal": hf == o}) + "\n")

    # ------------------------------------------------ small vocabulary for the file-loading paths
    small = os.path.join(OUT, "small")
    shutil.rmtree(small, ignore_errors=True)
    os.makedirs(small)
    svocab, smerges = build_vocab_merges(2000)
    write_vocab_merges(small, svocab, smerges)
    stok = CLIPTokenizerFast.from_pretrained(small)
    stok.backend_tokenizer.save(os.path.join(small, "tokenizer.json"))
    with open(os.path.join(small, "tokenizer_config.json"), "w") as f:
        json.dump({"model_max_length": 77, "pad_token": "<|endoftext|>", "bos_token": "<|startoftext|>",
                   "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
                   "tokenizer_class": "CLIPTokenizer"}, f, indent=1)
    with open(os.path.join(small, "expected.jsonl"), "w", encoding="utf-8") as f:
        for s in corpus[::13]:
            f.write(dumps({"t": s, "ids": stok(s)["input_ids"]}) + "\n")

    meta = {"versions": ACTUAL, "python": sys.version.split()[0], "strings": len(corpus),
            "longer_than_77": n_long, "open_clip_subset": n_oc,
            "note": "ids from transformers.CLIPTokenizerFast built from vocab.json/merges.txt rebuilt "
                    "from bpe_simple_vocab_16e6.txt.gz (clip-spec.md 1.2)"}
    with open(os.path.join(OUT, "versions.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(json.dumps(meta))
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
