//! Validated values parsed from client text: player names, room names and
//! chat texts. Each can only be built by its `parse`, so holding one proves it
//! follows the rule.

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

use super::ErrorCode;

/// Longest player name, in characters.
pub const MAX_NAME_CHARS: usize = 32;
/// Longest room name, in characters (all ASCII).
pub const MAX_ROOM_LEN: usize = 64;

/// A request the server refuses because of what the client sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The frame decoded to no known body.
    #[error("message has no body this server knows")]
    UnsupportedMessage,
    /// `Hello.protocol_version` is not one we speak.
    #[error("protocol version {0} is not supported (this server speaks {PROTOCOL})", PROTOCOL = super::PROTOCOL_VERSION)]
    UnsupportedVersion(u32),
    /// The player name breaks the naming rule.
    #[error("invalid name: {0}")]
    InvalidName(&'static str),
    /// The room name breaks the naming rule.
    #[error("invalid room name: {0}")]
    InvalidRoom(&'static str),
    /// The chat text is longer than allowed.
    #[error("chat text is {len} bytes, the limit is {max} (see Config::max_text_len)")]
    TextTooLong {
        /// Bytes received.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// The chat text is empty.
    #[error("chat text is empty")]
    EmptyText,
    /// The world name breaks the naming rule (that of rooms).
    #[error("invalid world name: {0}")]
    InvalidWorld(&'static str),
    /// A position that is not a finite number.
    #[error("position is not a finite number")]
    InvalidPosition,
    /// A room filter that is not `key=value` pairs.
    #[error("invalid filter: {0}")]
    InvalidFilter(#[from] super::label::FilterError),
}

impl ProtocolError {
    /// The code the client receives for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            ProtocolError::UnsupportedMessage => ErrorCode::UnsupportedMessage,
            ProtocolError::UnsupportedVersion(_) => ErrorCode::UnsupportedVersion,
            ProtocolError::InvalidName(_) => ErrorCode::InvalidName,
            ProtocolError::InvalidRoom(_) => ErrorCode::InvalidRoom,
            ProtocolError::TextTooLong { .. } => ErrorCode::TextTooLong,
            ProtocolError::EmptyText => ErrorCode::InvalidText,
            ProtocolError::InvalidWorld(_) => ErrorCode::InvalidWorld,
            ProtocolError::InvalidPosition => ErrorCode::InvalidPosition,
            ProtocolError::InvalidFilter(_) => ErrorCode::InvalidFilter,
        }
    }
}

/// A player's display name: 1 to 32 characters, none of them a control
/// character. Names are compared exactly (case and all).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PlayerName(Arc<str>);

impl PlayerName {
    /// # Errors
    /// [`ProtocolError::InvalidName`] saying which part of the rule is broken.
    pub fn parse(name: &str) -> Result<Self, ProtocolError> {
        let chars = name.chars().count();
        if chars == 0 {
            return Err(ProtocolError::InvalidName("empty"));
        }
        if chars > MAX_NAME_CHARS {
            return Err(ProtocolError::InvalidName("longer than 32 characters"));
        }
        if name.chars().any(char::is_control) {
            return Err(ProtocolError::InvalidName("contains a control character"));
        }
        Ok(PlayerName(name.into()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A room's name: 1 to 64 characters from `[A-Za-z0-9_.:-]`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RoomName(Arc<str>);

impl RoomName {
    /// # Errors
    /// [`ProtocolError::InvalidRoom`] saying which part of the rule is broken.
    pub fn parse(name: &str) -> Result<Self, ProtocolError> {
        if name.is_empty() {
            return Err(ProtocolError::InvalidRoom("empty"));
        }
        if name.len() > MAX_ROOM_LEN {
            return Err(ProtocolError::InvalidRoom("longer than 64 characters"));
        }
        let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-');
        if !name.bytes().all(allowed) {
            return Err(ProtocolError::InvalidRoom("only A-Z a-z 0-9 _ . : - are allowed"));
        }
        Ok(RoomName(name.into()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A world's name: the rule of room names.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct WorldName(RoomName);

impl WorldName {
    /// # Errors
    /// [`ProtocolError::InvalidWorld`] saying which part of the rule is broken.
    pub fn parse(name: &str) -> Result<Self, ProtocolError> {
        RoomName::parse(name).map(WorldName).map_err(|e| match e {
            ProtocolError::InvalidRoom(why) => ProtocolError::InvalidWorld(why),
            other => other,
        })
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl std::fmt::Debug for WorldName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::fmt::Display for WorldName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A point of a world, both coordinates finite (not yet clamped to any bounds).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    /// East.
    pub x: f32,
    /// North.
    pub y: f32,
}

impl Point {
    /// # Errors
    /// [`ProtocolError::InvalidPosition`] for NaN or an infinity.
    pub fn parse(x: f32, y: f32) -> Result<Self, ProtocolError> {
        if x.is_finite() && y.is_finite() {
            Ok(Point { x, y })
        } else {
            Err(ProtocolError::InvalidPosition)
        }
    }
}

/// Chat text: valid UTF-8 (guaranteed by protobuf decoding), 1 to the
/// configured maximum bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatText(String);

impl ChatText {
    /// # Errors
    /// [`ProtocolError::EmptyText`] or [`ProtocolError::TextTooLong`].
    pub fn parse(text: String, max_len: usize) -> Result<Self, ProtocolError> {
        if text.is_empty() {
            return Err(ProtocolError::EmptyText);
        }
        if text.len() > max_len {
            return Err(ProtocolError::TextTooLong {
                len: text.len(),
                max: max_len,
            });
        }
        Ok(ChatText(text))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Gives the text up, for the outgoing message.
    pub fn into_string(self) -> String {
        self.0
    }
}

macro_rules! shared_str_traits {
    ($($name:ident),*) => {$(
        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }
    )*};
}
shared_str_traits!(PlayerName, RoomName);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn player_names() {
        assert!(PlayerName::parse("a").is_ok());
        assert!(PlayerName::parse("Ünïcødé ✓ name").is_ok());
        assert!(
            PlayerName::parse(&"é".repeat(32)).is_ok(),
            "the limit counts characters, not bytes"
        );
        assert_eq!(PlayerName::parse(""), Err(ProtocolError::InvalidName("empty")));
        assert!(PlayerName::parse(&"x".repeat(33)).is_err());
        assert!(PlayerName::parse("tab\there").is_err());
        assert!(PlayerName::parse("nul\0").is_err());
        assert!(PlayerName::parse("del\u{7f}").is_err());
    }

    #[test]
    fn room_names() {
        assert!(RoomName::parse("lobby").is_ok());
        assert!(RoomName::parse("zone:eu-1.main_chat").is_ok());
        assert!(RoomName::parse(&"r".repeat(64)).is_ok());
        assert!(RoomName::parse(&"r".repeat(65)).is_err());
        assert!(RoomName::parse("").is_err());
        for bad in ["with space", "slash/", "ümlaut", "star*", "new\nline"] {
            assert_eq!(
                RoomName::parse(bad).map_err(|e| e.code()).err(),
                Some(ErrorCode::InvalidRoom),
                "{bad}"
            );
        }
    }

    #[test]
    fn chat_texts() {
        assert!(ChatText::parse("hi".into(), 1024).is_ok());
        assert_eq!(ChatText::parse(String::new(), 1024), Err(ProtocolError::EmptyText));
        assert!(ChatText::parse("x".repeat(1024), 1024).is_ok());
        let err = ChatText::parse("x".repeat(1025), 1024).unwrap_err();
        assert_eq!(err.code(), ErrorCode::TextTooLong);
        // The limit counts bytes: 342 three-byte characters are 1026 bytes.
        assert!(ChatText::parse("€".repeat(342), 1024).is_err());
    }

    proptest! {
        #[test]
        fn room_rule_matches_its_definition(name in "[ -~]{0,70}") {
            let expected = (1..=64).contains(&name.len())
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b));
            prop_assert_eq!(RoomName::parse(&name).is_ok(), expected);
        }

        #[test]
        fn name_rule_matches_its_definition(name in "\\PC{0,40}|.{0,3}[\\x00-\\x1f].{0,3}") {
            let expected = (1..=32).contains(&name.chars().count()) && !name.chars().any(char::is_control);
            prop_assert_eq!(PlayerName::parse(&name).is_ok(), expected);
        }

        #[test]
        fn text_rule_matches_its_definition(text in ".{0,20}", max in 1usize..40) {
            let expected = !text.is_empty() && text.len() <= max;
            prop_assert_eq!(ChatText::parse(text, max).is_ok(), expected);
        }
    }
}
