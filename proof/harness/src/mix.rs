//! The operation mix of the clients: a weight per operation, parsed from `--mix`
//! (`join=700,confirm=140,…`), and the seeded draw of the next operation.

use rand::{rngs::StdRng, Rng};

use crate::history::Func;

/// Weights of the operations (any scale).
#[derive(Debug, Clone, Copy)]
pub struct Mix {
    pub join: u32,
    pub confirm: u32,
    pub cancel: u32,
    pub refund: u32,
    pub stock: u32,
    pub pause: u32,
    pub resume: u32,
    pub close: u32,
}

impl Default for Mix {
    fn default() -> Self {
        Self {
            join: 700,
            confirm: 140,
            cancel: 50,
            refund: 40,
            stock: 40,
            pause: 8,
            resume: 20,
            close: 2,
        }
    }
}

impl std::str::FromStr for Mix {
    type Err = String;

    /// `join=700,confirm=140,…`; names left out keep their default weight.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut mix = Mix::default();
        for part in s.split(',').filter(|p| !p.trim().is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: expected name=weight"))?;
            let weight: u32 = weight
                .trim()
                .parse()
                .map_err(|e| format!("{part:?}: {e}"))?;
            let slot = match name.trim() {
                "join" => &mut mix.join,
                "confirm" => &mut mix.confirm,
                "cancel" => &mut mix.cancel,
                "refund" => &mut mix.refund,
                "stock" => &mut mix.stock,
                "pause" => &mut mix.pause,
                "resume" => &mut mix.resume,
                "close" => &mut mix.close,
                other => return Err(format!("unknown operation {other:?}")),
            };
            *slot = weight;
        }
        Ok(mix)
    }
}

impl Mix {
    pub(super) fn pick(&self, rng: &mut StdRng) -> Func {
        let table = [
            (Func::Join, self.join),
            (Func::Confirm, self.confirm),
            (Func::Cancel, self.cancel),
            (Func::Refund, self.refund),
            (Func::Stock, self.stock),
            (Func::Pause, self.pause),
            (Func::Resume, self.resume),
            (Func::Close, self.close),
        ];
        let total: u32 = table.iter().map(|(_, w)| w).sum();
        if total == 0 {
            return Func::Join;
        }
        let mut x = rng.random_range(0..total);
        for (f, w) in table {
            if x < w {
                return f;
            }
            x -= w;
        }
        Func::Join
    }
}
