//! Room labels and the filters that match them: `key=value` pairs separated
//! by spaces or commas, such as `mode=ranked region=eu`. A room matches a
//! filter when its label has every pair of the filter; an empty filter
//! matches every room. Nothing more: no wildcards, no ranges, no `or`.

use std::fmt;

/// The longest filter a client may send, bytes.
pub const MAX_FILTER_LEN: usize = 256;

/// A label's or a filter's pairs, in the order written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Label(Vec<(String, String)>);

/// A filter: the pairs a label must have.
pub type Filter = Label;

/// Why a filter could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterError {
    /// Longer than [`MAX_FILTER_LEN`].
    TooLong(usize),
    /// A part that is not `key=value` (with a non-empty key).
    NotAPair(String),
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FilterError::TooLong(len) => write!(f, "filter of {len} bytes is over the {MAX_FILTER_LEN}-byte limit"),
            FilterError::NotAPair(part) => write!(f, "filter part {part:?} is not key=value"),
        }
    }
}

impl std::error::Error for FilterError {}

impl fmt::Display for Label {
    /// The pairs, as [`Label::parse`] reads them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (key, value)) in self.0.iter().enumerate() {
            let gap = if i == 0 { "" } else { " " };
            write!(f, "{gap}{key}={value}")?;
        }
        Ok(())
    }
}

impl Label {
    /// Reads `text` as pairs.
    ///
    /// # Errors
    /// A part that is not `key=value`, or a text over [`MAX_FILTER_LEN`].
    pub fn parse(text: &str) -> Result<Label, FilterError> {
        if text.len() > MAX_FILTER_LEN {
            return Err(FilterError::TooLong(text.len()));
        }
        text.split([' ', ','])
            .filter(|part| !part.is_empty())
            .map(|part| match part.split_once('=') {
                Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
                _ => Err(FilterError::NotAPair(part.to_owned())),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Label)
    }

    /// Whether `label` (a room's label, as its plugin wrote it) has every pair of this filter.
    pub fn matches(&self, label: &str) -> bool {
        self.0.iter().all(|(key, value)| {
            label
                .split([' ', ','])
                .filter_map(|part| part.split_once('='))
                .any(|(k, v)| k == key && v == value)
        })
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pair_of_the_filter_must_be_in_the_label() {
        let filter = Label::parse("mode=ranked, region=eu").unwrap();
        assert!(filter.matches("region=eu mode=ranked level=3"));
        assert!(!filter.matches("mode=ranked region=us"));
        assert!(!filter.matches("mode=ranked"));
        assert!(!filter.matches(""));
        assert!(Label::parse("").unwrap().matches("anything at=all"));
        assert!(Label::parse("  ,, ").unwrap().is_empty());
        assert!(Label::parse("empty=").unwrap().matches("empty= x=1"));
    }

    #[test]
    fn what_is_not_a_pair_is_refused() {
        assert_eq!(Label::parse("ranked"), Err(FilterError::NotAPair("ranked".into())));
        assert_eq!(Label::parse("=eu"), Err(FilterError::NotAPair("=eu".into())));
        let long = "k=v ".repeat(100);
        assert_eq!(Label::parse(&long), Err(FilterError::TooLong(400)));
    }
}
