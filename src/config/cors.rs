//! The `Browsers` settings: which web origins (a shop's own pages) may call the public API from
//! a browser (CORS, docs/design.md §17). None by default: no CORS header is ever sent.

use clap::Args;

#[derive(Debug, Clone, Default, Args)]
pub struct CorsSettings {
    /// Origins whose pages may call the public and user API from a browser, e.g. `https://shop.example,https://www.shop.example` (scheme, host and port; `*` for any origin). Never the admin API or the console; no cookies are ever allowed. Unset: no CORS headers at all
    #[arg(id = "CORS_ALLOWED_ORIGINS", long = "cors-allowed-origins", env, default_value = "",
          hide_default_value = true, value_parser = origins)]
    pub allowed_origins: std::vec::Vec<String>,
}

/// `CORS_ALLOWED_ORIGINS`: a comma-separated list of `scheme://host[:port]`, or `*` alone.
fn origins(text: &str) -> Result<Vec<String>, String> {
    let entries: Vec<&str> = text
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    if entries.contains(&"*") {
        return if entries.len() == 1 {
            Ok(vec!["*".to_string()])
        } else {
            Err("`*` allows every origin and cannot be listed with others".into())
        };
    }
    entries.into_iter().map(origin).collect()
}

/// One origin as browsers send it in `Origin`: lower-case scheme and host, the port only when it
/// is not the scheme's default, no path.
fn origin(text: &str) -> Result<String, String> {
    let url = url::Url::parse(text).map_err(|e| format!("{text:?} is not an origin ({e})"))?;
    let bare = url.path() == "/" && url.query().is_none() && url.fragment().is_none();
    if !matches!(url.scheme(), "http" | "https")
        || !url.has_host()
        || !bare
        || !url.username().is_empty()
    {
        return Err(format!(
            "{text:?} is not an origin: write scheme://host[:port], e.g. https://shop.example"
        ));
    }
    Ok(url.origin().ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_normalised_as_browsers_send_them() {
        let list = origins("https://Shop.Example, http://localhost:3000 ,https://shop.example:443")
            .expect("valid");
        assert_eq!(
            list,
            [
                "https://shop.example",
                "http://localhost:3000",
                "https://shop.example"
            ]
        );
        assert_eq!(origins("*").expect("valid"), ["*"]);
        assert!(origins("").expect("valid").is_empty());
        for bad in [
            "shop.example",
            "https://shop.example/path",
            "ftp://shop.example",
            "*,https://a.example",
            "https://u@shop.example",
        ] {
            assert!(origins(bad).is_err(), "{bad}");
        }
    }
}
