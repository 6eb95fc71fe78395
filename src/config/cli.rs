//! Reading [`ServeArgs`]: from the process environment and the command line (the binary), from
//! the environment alone ([`from_env`]) or from pairs (tests, [`from_pairs`]).
//!
//! Two rules sit on top of clap's own:
//! - a variable set to the empty string counts as unset (`KAFKA_BOOTSTRAP_SERVERS=` in a compose
//!   file means "not given"), except `CONSUMERS`, whose empty value means "none";
//! - an invalid value is reported as a [`ConfigError`] naming the variable
//!   (`RELAY_WORKERS="0" is invalid: 0 is not in 1..=256`), with the value of a secret redacted.

use std::ffi::OsStr;

use clap::{
    error::{ContextKind, ContextValue, ErrorKind},
    Args, Command, FromArgMatches,
};

use crate::config::{args::ServeArgs, ConfigError, Settings};

/// Variables whose empty value means something (anything else empty is unset).
const EMPTY_MEANS_SOMETHING: &[&str] = &["CONSUMERS"];

/// `cmd` (and its subcommands) with the variables that are set to "" treated as unset.
pub fn without_empty_env(cmd: Command) -> Command {
    let cmd = cmd.mut_args(|arg| {
        let empty = arg.get_env().is_some_and(|name| {
            !EMPTY_MEANS_SOMETHING
                .iter()
                .any(|keep| OsStr::new(keep) == name)
                && std::env::var_os(name).is_some_and(|v| v.is_empty())
        });
        if empty {
            arg.env(None)
        } else {
            arg
        }
    });
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|sc| sc.get_name().to_string())
        .collect();
    names
        .into_iter()
        .fold(cmd, |cmd, name| cmd.mut_subcommand(name, without_empty_env))
}

/// The command that only holds [`ServeArgs`].
fn serve_command() -> Command {
    ServeArgs::augment_args(Command::new("firstcome"))
}

/// The environment's settings; the command line is not read.
pub fn from_env() -> Result<Settings, ConfigError> {
    let cmd = without_empty_env(serve_command());
    let matches = cmd
        .clone()
        .try_get_matches_from(["firstcome"])
        .map_err(|e| config_error(&cmd, &e))?;
    settings(&cmd, &matches)
}

/// Settings from `(variable, value)` pairs, ignoring the process environment.
pub fn from_pairs(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let cmd = serve_command();
    let mut argv = vec!["firstcome".to_string()];
    for (var, value) in pairs {
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_env() == Some(OsStr::new(var)))
            .ok_or_else(|| ConfigError::Unknown(var.to_string()))?;
        if value.is_empty() && !EMPTY_MEANS_SOMETHING.contains(var) {
            continue;
        }
        let long = arg.get_long().unwrap_or_default();
        argv.push(format!("--{long}={value}"));
    }
    let matches = cmd
        .clone()
        .mut_args(|arg| arg.env(None))
        .try_get_matches_from(argv)
        .map_err(|e| config_error(&cmd, &e))?;
    settings(&cmd, &matches)
}

/// Settings from a subcommand's (or the serve command's) matches.
fn settings(cmd: &Command, matches: &clap::ArgMatches) -> Result<Settings, ConfigError> {
    ServeArgs::from_arg_matches(matches)
        .map_err(|e| config_error(cmd, &e))?
        .into_settings()
}

/// Turns clap's error about a value into one that names its variable.
pub fn config_error(cmd: &Command, err: &clap::Error) -> ConfigError {
    // A parser that chose what of the value may be shown said everything itself.
    if let Some(own) = own_error(err) {
        return own;
    }
    let context = |kind| match err.get(kind) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        Some(ContextValue::Strings(v)) => Some(v.join(", ")),
        _ => None,
    };
    // "--relay-workers <RELAY_WORKERS>": the flag names its argument.
    let arg = context(ContextKind::InvalidArg).and_then(|flag| {
        let long = flag.trim_start_matches("--");
        let long = long
            .split([' ', '='])
            .next()
            .unwrap_or_default()
            .to_string();
        find(cmd, &long)
    });
    match (arg, err.kind()) {
        (Some((var, secret)), ErrorKind::InvalidValue | ErrorKind::ValueValidation) => {
            let value = context(ContextKind::InvalidValue).unwrap_or_default();
            let reason = match (err.kind(), context(ContextKind::ValidValue)) {
                (ErrorKind::InvalidValue, Some(valid)) => format!("expected one of: {valid}"),
                _ => std::error::Error::source(err)
                    .map(|e| e.to_string())
                    .unwrap_or_else(|| err.kind().to_string()),
            };
            ConfigError::Invalid {
                var,
                value: if secret { "<redacted>".into() } else { value },
                reason,
            }
        }
        _ => ConfigError::Other(err.render().to_string().trim().to_string()),
    }
}

/// The [`ConfigError`] a value parser returned (see [`crate::config::values`]), as it is.
fn own_error(err: &clap::Error) -> Option<ConfigError> {
    match std::error::Error::source(err)?.downcast_ref::<ConfigError>()? {
        ConfigError::Invalid { var, value, reason } => {
            Some(crate::config::invalid(var, value, reason))
        }
        ConfigError::Unknown(var) => Some(ConfigError::Unknown(var.clone())),
        ConfigError::Other(text) => Some(ConfigError::Other(text.clone())),
    }
}

/// The variable of the argument `--<long>`, and whether its value is secret.
fn find(cmd: &Command, long: &str) -> Option<(String, bool)> {
    let arg = cmd
        .get_arguments()
        .chain(cmd.get_subcommands().flat_map(|sc| sc.get_arguments()))
        .find(|a| a.get_long() == Some(long))?;
    let var = arg.get_env()?.to_str()?.to_string();
    Some((var, arg.is_hide_env_values_set()))
}
