//! Backups for HomeStation. This first part is the object format every backup is stored in (`format`),
//! and the streaming pipeline around it (`pipeline`); sources, S3 uploads, the catalog, retention and
//! drills build on these.

pub mod catalog;
pub mod format;
pub mod pipeline;
pub mod postgres;
pub mod retention;
pub mod s3;
pub mod transit;
