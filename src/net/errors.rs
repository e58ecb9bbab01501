//! The error strings of the socket API (README "Sockets", Errors).

/// The peer closed the connection or it broke.
pub const CONNECTION_LOST: &str = "connection-lost";
/// A connect or idle timeout expired.
pub const TIMEOUT: &str = "timeout";
/// The connection attempt was refused or failed.
pub const CONNECT_FAILED: &str = "connect-failed";
/// The host name could not be resolved or the address is not usable.
pub const ADDR_ERROR: &str = "addr-error";
/// Unsent output would pass the stream's send buffer size.
pub const SEND_BUFFER_FULL: &str = "send-buffer-full";
/// A message is larger than the package size.
pub const PACKAGE_TOO_LARGE: &str = "package-too-large";
/// Bytes from the peer are not a valid frame or message.
pub const BAD_PACKAGE: &str = "bad-package";
/// The manager's `max_fd` is reached.
pub const TOO_MANY_CONNECTION: &str = "too-many-connection";
/// An argument is missing or out of range.
pub const INVALID_PARAM: &str = "invalid-param";
/// The stream or listener is already closed.
pub const CLOSED: &str = "closed";
/// The manager's streams hold more unfinished frames than its cap; this one held the most.
pub const RECV_BUFFER_FULL: &str = "recv-buffer-full";
/// A stream asked to hold more service ids than the manager allows.
pub const TOO_MANY_IDS: &str = "too-many-ids";
/// The peer did not prove the cluster secret (or refused ours) in time.
pub const AUTH_FAILED: &str = "auth-failed";
/// The TLS handshake or session failed (bad certificate, wrong CA, plaintext peer...).
pub const TLS_FAILED: &str = "tls-failed";
