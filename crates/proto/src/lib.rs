//! The ddm wire format, shared by the service and every client.
//!
//! * [`message`]: the protobuf messages of `proto/ddm.proto`;
//! * [`frame`]: length-prefixed framing with an enforced size limit;
//! * [`error`]: Win32 error numbers with their names and texts;
//! * [`model`]: connection states, interface types, unreachability reasons;
//! * [`backlog`]: the bounded, gap-marking queue behind the typed stream;
//! * [`snapshot_parts`]: a stream's snapshot in parts that fit in frames;
//! * [`endpoint`]: the default socket path both ends agree on.
//!
//! Nothing here touches a socket: both ends do their own I/O and hand the
//! bytes to this crate, which is what makes it easy to fuzz.

pub mod backlog;
pub mod endpoint;
pub mod error;
pub mod frame;
pub mod message;
pub mod model;
pub mod snapshot_parts;

pub use error::WinError;
/// The protobuf runtime the messages are built on, for `encoded_len` and friends.
pub use prost;
