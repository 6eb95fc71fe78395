//! What `firstcome serve` (and `consume`, `migrate`) were given: every setting as a clap
//! argument read from its environment variable (docs/design.md §8), each also a flag
//! (`--relay-workers 8`) that wins over the environment. `firstcome serve --help` lists each one
//! with its default, its range and its variable; the declarations are the fields of
//! [`Settings`] and its groups.
//!
//! The values here were each checked alone; [`ServeArgs::into_settings`] adds the checks that
//! involve more than one.

use clap::Args;

use crate::config::{ConfigError, Settings};

/// All settings as given; each group is one heading of `--help`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    settings: Settings,
}

impl ServeArgs {
    /// The typed settings, after the checks that involve more than one value or the content of
    /// a URL; a failure names the variable.
    pub fn into_settings(self) -> Result<Settings, ConfigError> {
        self.settings.check()?;
        Ok(self.settings)
    }
}
