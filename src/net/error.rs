//! The errors of the socket API, as scripts see them: `as_str` is the one
//! place each error string of the contract is spelled.

use std::fmt;

/// Why a socket operation failed or a stream closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NetError {
    /// The peer closed the connection or it broke.
    ConnectionLost,
    /// A connect, idle, frame or close timeout expired.
    Timeout,
    /// The connection attempt was refused or failed.
    ConnectFailed,
    /// The host name could not be resolved or the address is not usable.
    AddrError,
    /// Unsent output would pass the stream's send buffer size.
    SendBufferFull,
    /// A message is larger than the package size.
    PackageTooLarge,
    /// Bytes from the peer are not a valid frame or message.
    BadPackage,
    /// The manager's `max_fd` is reached.
    TooManyConnection,
    /// An argument is missing or out of range.
    InvalidParam,
    /// The stream or listener is already closed.
    Closed,
    /// The manager's streams hold more unfinished frames than its cap; this one held the most.
    RecvBufferFull,
    /// A stream asked to hold more service ids than the manager allows.
    TooManyIds,
    /// The peer did not prove the cluster secret (or refused ours) in time.
    AuthFailed,
    /// The TLS handshake or session failed (bad certificate, wrong CA, plaintext peer...).
    TlsFailed,
}

impl NetError {
    /// The error string scripts see.
    pub fn as_str(self) -> &'static str {
        match self {
            NetError::ConnectionLost => "connection-lost",
            NetError::Timeout => "timeout",
            NetError::ConnectFailed => "connect-failed",
            NetError::AddrError => "addr-error",
            NetError::SendBufferFull => "send-buffer-full",
            NetError::PackageTooLarge => "package-too-large",
            NetError::BadPackage => "bad-package",
            NetError::TooManyConnection => "too-many-connection",
            NetError::InvalidParam => "invalid-param",
            NetError::Closed => "closed",
            NetError::RecvBufferFull => "recv-buffer-full",
            NetError::TooManyIds => "too-many-ids",
            NetError::AuthFailed => "auth-failed",
            NetError::TlsFailed => "tls-failed",
        }
    }
}

impl AsRef<str> for NetError {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::NetError;

    #[test]
    fn strings_of_the_contract() {
        assert_eq!(NetError::ConnectionLost.as_str(), "connection-lost");
        assert_eq!(NetError::TooManyConnection.to_string(), "too-many-connection");
        assert_eq!(NetError::TlsFailed.as_str(), "tls-failed");
    }
}
