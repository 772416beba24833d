//! ags-agent
pub mod config;
pub mod overlay;
pub mod profile;
pub mod staging;
pub mod workspace;
