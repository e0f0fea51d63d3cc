//! The user's photos and what is known about them.

pub mod ann;
pub mod cache;
pub mod export;
pub mod photo_info;
pub mod scan;
pub mod search;
