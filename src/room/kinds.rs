//! The room kinds a server has: each kind's name and the factory that makes
//! its plugin. `chat` is always there.

use std::collections::HashMap;

use super::Kind;
use super::plugin::{CHAT, Chat, Factory, RoomPlugin, factory};

/// See the module documentation.
#[derive(Clone)]
pub struct Kinds {
    kinds: HashMap<Kind, Factory>,
}

impl Default for Kinds {
    fn default() -> Self {
        let mut kinds = Kinds { kinds: HashMap::new() };
        kinds.register::<Chat>(CHAT);
        kinds
    }
}

impl std::fmt::Debug for Kinds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.kinds.keys()).finish()
    }
}

impl Kinds {
    /// Registers plugin type `P` as kind `name`, replacing any kind of that name.
    pub fn register<P: RoomPlugin>(&mut self, name: &str) {
        self.register_factory(name, factory::<P>());
    }

    /// Registers `factory` as kind `name`, replacing any kind of that name.
    pub fn register_factory(&mut self, name: &str, factory: Factory) {
        self.kinds.insert(Kind::from(name), factory);
    }

    /// Kind `name` and its factory; an empty name is `chat`.
    pub fn get(&self, name: &str) -> Option<(&Kind, &Factory)> {
        let name = if name.is_empty() { CHAT } else { name };
        self.kinds.get_key_value(name)
    }

    /// The names of the kinds, sorted.
    pub fn names(&self) -> Vec<Kind> {
        let mut names: Vec<Kind> = self.kinds.keys().cloned().collect();
        names.sort();
        names
    }
}
