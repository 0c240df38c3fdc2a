//! Pure text edits of the files dkim-setup changes but does not own.
//!
//! Every function here takes the old text of a file and returns the new text;
//! none touches the disk. Each is tested with before/after fixtures and run
//! twice to prove that a second edit changes nothing.

pub mod default_file;
pub mod main_cf;
pub mod opendkim_conf;
pub mod tables;
