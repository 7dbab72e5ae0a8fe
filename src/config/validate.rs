//! Checking a configuration: parsing flags and variables, and the rules
//! between settings, each failure naming the setting at fault.

use clap::Parser as _;

use super::{
    AdminAddr, CHAT_FRAME_OVERHEAD, Config, MAX_MEMBER_BYTES, MAX_WORLD_CELLS, MAX_WORLD_SIDE, MEMBER_FRAME_OVERHEAD,
};

/// A setting that cannot work, or could not be parsed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A flag or variable is unknown or not a valid value (also `--help` and `--version`).
    #[error(transparent)]
    Parse(#[from] clap::Error),
    /// The values parse but do not fit together.
    #[error("invalid configuration: {0}")]
    Invalid(InvalidSetting),
}

/// A setting whose value parses but cannot work, alone or with the others.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{problem}")]
pub struct InvalidSetting {
    /// The setting at fault: its field name in `Config`, or for the authentication settings
    /// (`Config::auth`) its flag's name in snake case (`auth_key` for `--auth-key`).
    pub setting: &'static str,
    /// What is wrong, in a sentence that names the setting.
    pub problem: String,
}

impl InvalidSetting {
    /// `setting` is wrong: `problem`.
    pub fn new(setting: &'static str, problem: impl Into<String>) -> Self {
        InvalidSetting {
            setting,
            problem: problem.into(),
        }
    }
}

impl From<InvalidSetting> for ConfigError {
    fn from(invalid: InvalidSetting) -> Self {
        ConfigError::Invalid(invalid)
    }
}

impl Config {
    /// Parses flags (the first item is the program name) over `TAVERN_*`
    /// variables, then validates.
    ///
    /// # Errors
    /// [`ConfigError`] naming the setting at fault.
    pub fn parse_from<I, T>(args: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let config = Config::try_parse_from(args)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks the rules between settings.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the setting at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_counts()?;
        self.validate_world()?;
        self.validate_frames()?;
        self.validate_security()?;
        if let AdminAddr::On(admin) = self.admin_addr
            && admin == self.addr
            && admin.port() != 0
        {
            let problem = format!("admin_addr ({admin}) must not be the game address");
            return Err(InvalidSetting::new("admin_addr", problem).into());
        }
        if let super::WsAddr::On(ws) = self.ws.addr
            && ws.port() != 0
            && (ws == self.addr || self.admin_addr == AdminAddr::On(ws))
        {
            let problem = format!("ws_addr ({ws}) must be neither the game address nor the admin address");
            return Err(InvalidSetting::new("ws_addr", problem).into());
        }
        if self.cluster.node_ttl_ms < 3 * self.cluster.heartbeat_ms {
            let problem = format!(
                "cluster_node_ttl_ms ({}) must be at least three heartbeats ({} ms each)",
                self.cluster.node_ttl_ms, self.cluster.heartbeat_ms
            );
            return Err(InvalidSetting::new("cluster_node_ttl_ms", problem).into());
        }
        Ok(())
    }

    /// Checks the counts and capacities that must be at least 1.
    fn validate_counts(&self) -> Result<(), InvalidSetting> {
        let positive = [
            ("max_connections", self.max_connections),
            ("max_hello_frame_len", self.max_hello_frame_len),
            ("max_text_len", self.max_text_len),
            ("max_rooms_per_session", self.max_rooms_per_session),
            ("outbound_queue_frames", self.outbound_queue_frames),
            ("write_batch_bytes", self.write_batch_bytes),
            ("room_inbox", self.room_inbox),
            ("world_inbox", self.world_inbox),
            ("broadcast_parallel_threshold", self.broadcast_parallel_threshold),
            ("hook_queue", self.hook_queue),
            ("world_max_players", self.world_max_players),
            ("max_worlds", self.max_worlds),
            (
                "rate_limit_disconnect_after",
                usize::try_from(self.rate_limit_disconnect_after).unwrap_or(usize::MAX),
            ),
        ];
        match positive.iter().find(|(_, value)| *value == 0) {
            Some(&(name, _)) => Err(InvalidSetting::new(name, format!("{name} must be at least 1"))),
            None => Ok(()),
        }
    }

    /// Checks the world settings: finite, positive, and a grid of bounded size.
    fn validate_world(&self) -> Result<(), InvalidSetting> {
        let lengths = [
            ("world_width", self.world_width),
            ("world_height", self.world_height),
            ("world_aoi_radius", self.world_aoi_radius),
            ("world_cell_size", self.world_cell_size),
            ("world_max_speed", self.world_max_speed),
        ];
        for (name, value) in lengths {
            if !(value.is_finite() && value > 0.0) {
                return Err(InvalidSetting::new(name, format!("{name} must be a number above 0")));
            }
        }
        if !(self.world_aoi_hysteresis.is_finite() && self.world_aoi_hysteresis >= 0.0) {
            let problem = "world_aoi_hysteresis must be a number of at least 0";
            return Err(InvalidSetting::new("world_aoi_hysteresis", problem));
        }
        for (name, value) in [("world_width", self.world_width), ("world_height", self.world_height)] {
            if value > MAX_WORLD_SIDE {
                return Err(InvalidSetting::new(
                    name,
                    format!("{name} must be at most {MAX_WORLD_SIDE}"),
                ));
            }
        }
        let cells =
            (self.world_width / self.world_cell_size).ceil() * (self.world_height / self.world_cell_size).ceil();
        if cells > MAX_WORLD_CELLS {
            let problem = format!(
                "world_cell_size {} makes {cells} grid cells; at most {MAX_WORLD_CELLS} are allowed",
                self.world_cell_size
            );
            return Err(InvalidSetting::new("world_cell_size", problem));
        }
        Ok(())
    }

    /// Checks that frames, texts and the outbound queue fit one another.
    fn validate_frames(&self) -> Result<(), InvalidSetting> {
        if u32::try_from(self.max_frame_len).is_err() {
            let problem = format!(
                "max_frame_len {} does not fit the 32-bit length field",
                self.max_frame_len
            );
            return Err(InvalidSetting::new("max_frame_len", problem));
        }
        if self.max_hello_frame_len > self.max_frame_len {
            let problem = format!(
                "max_hello_frame_len ({}) must not exceed max_frame_len ({})",
                self.max_hello_frame_len, self.max_frame_len
            );
            return Err(InvalidSetting::new("max_hello_frame_len", problem));
        }
        if self.max_text_len + CHAT_FRAME_OVERHEAD > self.max_frame_len {
            let problem = format!(
                "max_frame_len ({}) must hold a chat of max_text_len ({}) plus {CHAT_FRAME_OVERHEAD} bytes",
                self.max_frame_len, self.max_text_len
            );
            return Err(InvalidSetting::new("max_frame_len", problem));
        }
        if self.max_frame_len < MEMBER_FRAME_OVERHEAD + MAX_MEMBER_BYTES {
            let problem = format!(
                "max_frame_len ({}) must hold a member list frame of one member ({} bytes)",
                self.max_frame_len,
                MEMBER_FRAME_OVERHEAD + MAX_MEMBER_BYTES
            );
            return Err(InvalidSetting::new("max_frame_len", problem));
        }
        self.validate_member_list()?;
        if self.outbound_queue_bytes < self.max_text_len + CHAT_FRAME_OVERHEAD {
            let problem = format!(
                "outbound_queue_bytes ({}) must hold at least one chat of max_text_len ({}) plus {CHAT_FRAME_OVERHEAD} bytes",
                self.outbound_queue_bytes, self.max_text_len
            );
            return Err(InvalidSetting::new("outbound_queue_bytes", problem));
        }
        Ok(())
    }

    /// Checks that the member list of the biggest room allowed fits an empty outbound queue.
    fn validate_member_list(&self) -> Result<(), InvalidSetting> {
        let frames = self.max_room_members.div_ceil(self.members_per_frame());
        let bytes = self.max_room_members * MAX_MEMBER_BYTES + frames * MEMBER_FRAME_OVERHEAD;
        if bytes > self.outbound_queue_bytes || frames > self.outbound_queue_frames {
            let problem = format!(
                "max_room_members ({}) makes member lists of up to {bytes} bytes in {frames} frames, more than \
                 outbound_queue_bytes ({}) or outbound_queue_frames ({}) hold",
                self.max_room_members, self.outbound_queue_bytes, self.outbound_queue_frames
            );
            return Err(InvalidSetting::new("max_room_members", problem));
        }
        Ok(())
    }

    /// Checks the TLS files go together and the token settings are usable.
    fn validate_security(&self) -> Result<(), InvalidSetting> {
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            let setting = if self.tls_cert.is_some() { "tls_key" } else { "tls_cert" };
            return Err(InvalidSetting::new(setting, "tls_cert and tls_key go together"));
        }
        if self.tls_client_ca.is_some() && self.tls_cert.is_none() {
            return Err(InvalidSetting::new(
                "tls_client_ca",
                "tls_client_ca needs tls_cert and tls_key",
            ));
        }
        self.auth.validate()
    }
}
