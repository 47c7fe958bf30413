//! Name resolution for sandboxes: the embedded server and the files Docker writes.

pub mod files;
pub(crate) mod server;

pub use server::{nameservers, DNS_ADDRESS};
