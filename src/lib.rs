//! evatag: tags photos with ImageNet-1k labels using EVA-CLIP giant, and finds similar photos.
//!
//! The modules depend one way: [`cli`] and [`gui`] drive the [`worker`], which uses the
//! [`model`], [`preprocess`] and [`library`].

pub mod cli;
pub mod gui;
pub mod library;
pub mod model;
pub mod preprocess;
mod simd;
pub mod worker;
