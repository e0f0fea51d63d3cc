//! The user's photos and what is known about them.

pub mod ann;
pub mod atomic_file;
pub mod cache;
pub mod duplicates;
pub mod export;
pub mod photo_info;
pub mod scan;
pub mod search;
pub mod trash;
pub mod watch;
