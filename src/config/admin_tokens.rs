//! The admin tokens' values (`ADMIN_TOKEN`, `ADMIN_TOKENS`) and the rule that refuses one a
//! client could guess (docs/design.md §17): the admin door limits guessing per client address,
//! and this makes sure a guess has nothing to find.

use crate::config::Secret;

/// Tokens the project's own documentation and scripts have shown as examples: whoever copied one
/// runs an admin API anyone who read the same page can call.
const EXAMPLE_TOKENS: [&str; 3] = [
    "change-me-local-admin-token",
    "my-local-admin-token-123",
    "firstcome-bench-admin-token",
];

/// How to make an admin token that passes [`weak_admin_token`], as every refusal says.
const MAKE_ONE: &str = "generate one, e.g. `openssl rand -hex 32`";

/// Words of this service a person picks for its token, which the estimate counts as dictionary
/// words beside its own (English words, common passwords, names).
const SERVICE_WORDS: [&str; 12] = [
    "firstcome",
    "first",
    "come",
    "admin",
    "administrator",
    "token",
    "secret",
    "flash",
    "sale",
    "campaign",
    "bench",
    "local",
];

/// The fewest guesses an admin token may take by zxcvbn's estimate (a cracker's model:
/// dictionary words and l33t, keyboard walks, dates, sequences, repeats), as a power of ten:
/// 10^18, about 60 bits. Its count stops at 2^64; a generated secret reaches it.
const MIN_GUESSES_LOG10: f64 = 18.0;

/// Why `token` may not be an admin token, if it may not (docs/design.md §17): fewer than 24
/// characters or 12 distinct ones, a repetition (`abcabc…`), a straight run (`abcd…`, `9876…`),
/// an example of the documentation, the shape of a JWT (a bearer of that shape is a user's and
/// is never compared with the admin tokens), or fewer than 10^18 guesses by zxcvbn's estimate
/// (dictionary words, keyboard walks, dates, near-repetitions: `correcthorsebatterystaple`,
/// `qwertyuiopasdfghjklzxcvbnm`, `P@ssw0rd-firstcome-2026!`), or a phrase (mostly dictionary
/// words, however long). A generated secret of 32 bytes, hex or base64, passes; words a person
/// picks do not.
pub(crate) fn weak_admin_token(token: &str) -> Option<String> {
    let chars: Vec<char> = token.chars().collect();
    let reason = if chars.len() < 24 {
        "must be at least 24 characters"
    } else if distinct(&chars) < 12 {
        "must have at least 12 distinct characters"
    } else if repetition(&chars) {
        "must not be a shorter sequence repeated"
    } else if straight_run(&chars) {
        "must not be a straight run of characters"
    } else if EXAMPLE_TOKENS.contains(&token) {
        "is an example of the documentation"
    } else if crate::config::jwt_shape::well_formed_jwt(token) {
        "must not be shaped like a JWT (a bearer of that shape is taken for a user's)"
    } else {
        let estimate = zxcvbn::zxcvbn(token, &SERVICE_WORDS);
        if estimate.guesses_log10() < MIN_GUESSES_LOG10 {
            "is guessable (dictionary words, keyboard walks, dates or a near-repetition)"
        } else if words_share(token, chars.len()) >= MAX_WORDS_SHARE {
            "is a phrase (mostly dictionary words: a long sentence is still guessable)"
        } else {
            return None;
        }
    };
    Some(format!("{reason}; {MAKE_ONE}"))
}

/// The largest share of a token's characters that guessable words may make up. zxcvbn's
/// estimate of a long phrase reaches its cap (`the quick brown fox jumps over`, `to be or not to
/// be that is the question`, `admin-token-for-firstcome-production` all read as 10^19 guesses),
/// yet a phrase is what crackers try first.
const MAX_WORDS_SHARE: f64 = 0.6;

/// Fewer guesses than this (10^6) make a word of a token guessable: a dictionary word, a name,
/// a date, the service's own words.
const WORD_GUESSES_LOG10: f64 = 6.0;

/// The share of `len` characters made of guessable words: the token cut at every character
/// that is not a letter or a digit, each piece judged by zxcvbn alone. A generated secret is one
/// long piece (hex) or a few random ones (base64): 0.
fn words_share(token: &str, len: usize) -> f64 {
    let words: usize = (token.split(|c: char| !c.is_alphanumeric()))
        .filter(|part| !part.is_empty())
        .filter(|part| zxcvbn::zxcvbn(part, &SERVICE_WORDS).guesses_log10() < WORD_GUESSES_LOG10)
        .map(|part| part.chars().count())
        .sum();
    words as f64 / len.max(1) as f64
}

fn distinct(chars: &[char]) -> usize {
    let mut seen: Vec<char> = chars.to_vec();
    seen.sort_unstable();
    seen.dedup();
    seen.len()
}

/// Whether `chars` repeats a shorter sequence from its start (`abcabcab`).
fn repetition(chars: &[char]) -> bool {
    (1..=chars.len() / 2).any(|period| (period..chars.len()).all(|i| chars[i] == chars[i - period]))
}

/// Whether each character is the one after (or each the one before) its predecessor, by code
/// point or along `0-9a-z` (`0123456789abcdef…`), case aside.
fn straight_run(chars: &[char]) -> bool {
    const ALONG: &str = "0123456789abcdefghijklmnopqrstuvwxyz";
    let steps = |position: &dyn Fn(char) -> Option<i64>| -> Option<Vec<i64>> {
        chars
            .windows(2)
            .map(|w| Some(position(w[1])? - position(w[0])?))
            .collect()
    };
    let code_point = |c: char| Some(i64::from(u32::from(c)));
    let along = |c: char| {
        ALONG
            .find(c.to_ascii_lowercase())
            .and_then(|i| i64::try_from(i).ok())
    };
    let uniform = |steps: Option<Vec<i64>>| {
        steps.is_some_and(|s| s.iter().all(|d| *d == 1) || s.iter().all(|d| *d == -1))
    };
    uniform(steps(&code_point)) || uniform(steps(&along))
}

/// `ADMIN_TOKEN`: empty is unset; otherwise a token [`weak_admin_token`] accepts.
pub(super) fn admin_token(text: &str) -> Result<Option<Secret>, String> {
    match text {
        "" => Ok(None),
        t => match weak_admin_token(t) {
            Some(reason) => Err(reason),
            None => Ok(Some(Secret::new(t))),
        },
    }
}

/// One entry of `ADMIN_TOKENS`: the name the service records for what the token does.
#[derive(Debug, Clone)]
pub struct NamedToken {
    pub name: String,
    pub token: Secret,
}

/// `ADMIN_TOKENS`: `name:token,…`; empty is none. Names are 1–32 characters of `[a-z0-9_.-]`,
/// each once; tokens that [`weak_admin_token`] accepts, without `,` (the separator), each once.
pub(super) fn admin_tokens(text: &str) -> Result<Vec<NamedToken>, String> {
    let mut tokens: Vec<NamedToken> = Vec::new();
    for entry in text.split(',').filter(|e| !e.trim().is_empty()) {
        let (name, token) = entry
            .split_once(':')
            .ok_or("each entry must be name:token")?;
        let name = name.trim();
        let name_ok = (1..=32).contains(&name.len())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c));
        if !name_ok {
            return Err(format!(
                "token name {name:?}: 1-32 characters of [a-z0-9_.-]"
            ));
        }
        if let Some(reason) = weak_admin_token(token) {
            return Err(format!("the token of {name}: {reason}"));
        }
        if tokens.iter().any(|t| t.name == name) {
            return Err(format!("the name {name} is given twice"));
        }
        if tokens.iter().any(|t| t.token.expose() == token) {
            return Err(format!("the token of {name} is also another name's"));
        }
        tokens.push(NamedToken {
            name: name.to_string(),
            token: Secret::new(token),
        });
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::weak_admin_token;

    #[test]
    fn guessable_admin_tokens_are_refused_and_generated_ones_pass() {
        for weak in [
            "aaaaaaaaaaaaaaab",
            "0123456789abcdef",
            "passwordpassword",
            "passwordpasswordpassword",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab",
            "abcdefghijklabcdefghijkl",
            "abcdefghijklmnopqrstuvwxyz",
            "0123456789abcdefghijklmnop",
            "ZYXWVUTSRQPONMLKJIHGFEDCBA",
            "change-me-local-admin-token",
            // Each passed the rules before (issue 71).
            "correcthorsebatterystaple",
            "qwertyuiopasdfghjklzxcvbnm",
            "P@ssw0rd-firstcome-2026!",
            "firstcome-admin-token-2026",
            "aaaaaaaaaaaabcdefghijklmn",
            "test-admin-token-0123456789",
            // Each passed the rules before (issue 90): long phrases.
            "the quick brown fox jumps over",
            "to be or not to be that is the question",
            "admin-token-for-firstcome-production",
        ] {
            let reason = weak_admin_token(weak).unwrap_or_else(|| panic!("{weak} passed"));
            assert!(reason.contains("openssl rand -hex 32"), "{reason}");
        }
        for strong in [
            // `openssl rand -hex 32` and `openssl rand -base64 32`.
            "5f0c3a9e7b1d24c68e0f9a3b57d1c2e4a6b8d0f1e3c5a7b9d2f4e6a8c0b1d3f5",
            "q3Zt9Kf+0mLx2Wv8Bn4Rj7Hs1Yc6Pd5Ue/GaTkXoNiE=",
            "Tq7rV2xK9mLp4Wz8Hc3Nf6Bd1Js5Ay0e",
        ] {
            assert_eq!(weak_admin_token(strong), None, "{strong}");
        }
    }
}
