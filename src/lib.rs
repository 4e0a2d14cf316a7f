//! nslab: build fresh Linux namespaces, run a scenario's steps in them, and
//! report what is observably isolated.
//!
//! Data flows one way: scenario file → [`scenario`] (parse, validate) →
//! [`plan`] → [`sandbox`] (the only code that forks, enters namespaces or
//! uses `unsafe`) → [`probe`] and commands → [`check`] → [`report`].

#![deny(unsafe_code)]

pub mod backlog;
pub mod check;
pub mod cli;
pub mod doctor;
pub mod env;
pub mod import;
pub mod integrity;
pub mod ns;
pub mod plan;
pub mod probe;
pub mod report;
pub mod runner;
#[allow(unsafe_code)]
pub mod sandbox;
pub mod scenario;
pub mod suite;
