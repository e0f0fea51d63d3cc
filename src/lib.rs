//! evatag: tags photos with ImageNet-1k labels using EVA-CLIP giant or an EVA-02 model, and finds
//! similar photos.
//!
//! The modules depend one way: [`cli`] and [`gui`] fill in the [`options`] and drive the
//! [`worker`], which uses the [`model`], [`preprocess`] and [`library`]; `main.rs` picks the
//! front end.

pub mod cli;
pub mod fail_point;
pub mod gui;
pub mod library;
pub mod model;
pub mod options;
pub mod preprocess;
pub mod setup;
pub mod units;
pub mod worker;
