//! The error type of the whole crate.
//!
//! Every fallible function returns [`Result`]. An [`Error`] carries an
//! [`ErrorKind`] (stable, machine-readable; each kind has the C ABI status of
//! the same name, which adds statuses of its own for what only C callers
//! meet: NULL pointers, short buffers, invalid UTF-8, failed allocations and
//! caught panics) and a human-readable message that names the file, tensor
//! or argument at fault.

use std::fmt;
use std::path::Path;

/// What went wrong, in categories a caller can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// An argument is out of range or inconsistent (wrong shape, empty batch,
    /// a token id outside the vocabulary, ...).
    InvalidArgument,
    /// Reading a file failed (missing, unreadable, ...).
    Io,
    /// A file or buffer is malformed: bad JSON, truncated or inconsistent
    /// safetensors, undecodable image, missing or mis-shaped tensors.
    Format,
    /// The input is well formed but uses something this runtime does not
    /// implement (a dtype, an activation, an image codec, ...).
    Unsupported,
    /// A configured limit was exceeded (image dimensions, allocation size).
    LimitExceeded,
    /// A bug in this crate (an internal invariant did not hold).
    Internal,
}

impl ErrorKind {
    /// A short lowercase name for the kind, e.g. `"format"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "invalid argument",
            ErrorKind::Io => "i/o",
            ErrorKind::Format => "format",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::LimitExceeded => "limit exceeded",
            ErrorKind::Internal => "internal",
        }
    }
}

/// The error type of this crate: a kind and a message that says what and where.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// `Result<T, clip::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, message: message.into(), source: None }
    }

    /// Attaches the underlying cause (kept for [`std::error::Error::source`]).
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// An [`ErrorKind::InvalidArgument`] error.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }

    /// An [`ErrorKind::Format`] error.
    pub fn format(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Format, message)
    }

    /// An [`ErrorKind::Unsupported`] error.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }

    /// An [`ErrorKind::LimitExceeded`] error.
    pub fn limit(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::LimitExceeded, message)
    }

    /// An [`ErrorKind::Internal`] error.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// An I/O error on `path`, e.g. "cannot read /m/config.json: No such file or directory".
    pub fn io(path: &Path, err: std::io::Error) -> Self {
        Self::new(ErrorKind::Io, format!("cannot read {}: {err}", path.display())).with_source(err)
    }

    /// The category of the error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message alone, without the kind.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Prefixes the message with context, e.g. the file being loaded.
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Adds context to the error of a [`Result`].
pub trait ResultExt<T> {
    /// Prefixes the error message with `context` (evaluated only on error).
    fn with_context<C: fmt::Display>(self, context: impl FnOnce() -> C) -> Result<T>;
}

impl<T> ResultExt<T> for Result<T> {
    fn with_context<C: fmt::Display>(self, context: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|e| e.context(context()))
    }
}
