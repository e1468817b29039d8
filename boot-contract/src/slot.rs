//! The two root slots, A and B (ARCHITECTURE.md, "On-disk layout"): named by a
//! letter in partition labels (`root-a`), ESP paths (`/slipway/a/`), boot
//! entries (`slipway-a.conf`) and on the kernel command line
//! (`slipway.slot=a`).

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Slot {
    A,
    B,
}

impl Slot {
    /// The letter every name of the slot uses, lower case.
    pub fn letter(self) -> char {
        match self {
            Slot::A => 'a',
            Slot::B => 'b',
        }
    }

    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }

    /// `a` or `b`, either case (the init has always taken `A`).
    pub fn from_letter(value: &str) -> Option<Slot> {
        match value {
            "a" | "A" => Some(Slot::A),
            "b" | "B" => Some(Slot::B),
            _ => None,
        }
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.letter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_round_trip() {
        for s in [Slot::A, Slot::B] {
            assert_eq!(Slot::from_letter(&s.to_string()), Some(s));
            assert_eq!(s.other().other(), s);
            assert_ne!(s.other(), s);
        }
        assert_eq!(Slot::from_letter("B"), Some(Slot::B));
        for bad in ["", "c", "ab", " a"] {
            assert_eq!(Slot::from_letter(bad), None, "{bad:?}");
        }
    }
}
