//! Options and helpers shared by every subcommand.

use std::process::ExitCode;

/// Prints `error: <message>` on stderr and returns the exit code for it:
/// 2 for bad usage (an invalid argument), 1 for everything else.
pub fn report(e: &clip::Error) -> ExitCode {
    eprintln!("error: {e}");
    match e.kind() {
        clip::ErrorKind::InvalidArgument => ExitCode::from(2),
        _ => ExitCode::from(1),
    }
}
