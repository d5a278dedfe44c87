//! The system's `git`, the one Git the crate uses: run as a child process that
//! never prompts and is killed past a timeout ([`command`]), the files of a
//! commit read from its objects ([`tree`]), and Git's blob ids ([`blob`]).

pub(crate) mod blob;
pub(crate) mod command;
pub(crate) mod tree;

pub(crate) use command::{Git, GitError};
