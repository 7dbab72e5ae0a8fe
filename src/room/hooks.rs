//! Calling a plugin's hooks: each call timed into its kind's histogram
//! (with the TSC clock, a few ns a read, since chat's hook runs for every
//! message), logged and counted when over budget, and a panic caught so
//! that it closes only its own room.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use prometheus::Histogram;
use quanta::Instant;
use tracing::{error, warn};

use super::context::RoomCtx;
use super::core::RoomCore;
use super::plugin::{Factory, RoomPlugin, RoomSettings};

/// A plugin hook, as metrics and logs name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Hook {
    Create,
    JoinAttempt,
    Snapshot,
    Join,
    Dropped,
    Reconnected,
    Leave,
    Message,
    Chat,
    Tick,
    Timer,
    Dispose,
}

impl Hook {
    const ALL: [Hook; 12] = [
        Hook::Create,
        Hook::JoinAttempt,
        Hook::Snapshot,
        Hook::Join,
        Hook::Dropped,
        Hook::Reconnected,
        Hook::Leave,
        Hook::Message,
        Hook::Chat,
        Hook::Tick,
        Hook::Timer,
        Hook::Dispose,
    ];

    pub(super) fn as_str(self) -> &'static str {
        match self {
            Hook::Create => "create",
            Hook::JoinAttempt => "join_attempt",
            Hook::Snapshot => "snapshot",
            Hook::Join => "join",
            Hook::Dropped => "dropped",
            Hook::Reconnected => "reconnected",
            Hook::Leave => "leave",
            Hook::Message => "message",
            Hook::Chat => "chat",
            Hook::Tick => "tick",
            Hook::Timer => "timer",
            Hook::Dispose => "dispose",
        }
    }
}

/// A room's plugin with its hook histograms, or the reason it is gone.
pub(super) struct Guarded {
    plugin: Option<Box<dyn RoomPlugin>>,
    /// In the order of [`Hook::ALL`].
    histograms: Arc<[Histogram]>,
    /// Why the plugin is gone (it panicked), until the room has acted on it.
    pub(super) failure: Option<String>,
}

impl Guarded {
    /// Guards `plugin` (if the room has one) of the core's kind.
    pub(super) fn new(plugin: Option<Box<dyn RoomPlugin>>, core: &RoomCore) -> Guarded {
        let hooks = Hook::ALL.map(Hook::as_str);
        Guarded {
            plugin,
            histograms: core.context.stats.plugins.hook_histograms(&core.kind, &hooks),
            failure: None,
        }
    }

    /// Runs `call` on the plugin with a context on `core`; `None` when
    /// there is no plugin, or it panicked (it is then dropped, and
    /// `failure` says why).
    pub(super) fn call<R>(
        &mut self,
        hook: Hook,
        core: &mut RoomCore,
        call: impl FnOnce(&mut dyn RoomPlugin, &mut RoomCtx<'_>) -> R,
    ) -> Option<R> {
        let plugin = self.plugin.as_mut()?;
        let started = Instant::now();
        let result = {
            let mut ctx = RoomCtx { core: &mut *core };
            catch_unwind(AssertUnwindSafe(|| call(plugin.as_mut(), &mut ctx)))
        };
        let took = started.elapsed();
        self.record(hook, took, core);
        match result {
            Ok(value) => Some(value),
            Err(panic) => {
                let message = panic_message(panic.as_ref());
                error!(room = %core.name, kind = %core.kind, hook = hook.as_str(), panic = %message, "room plugin panicked: closing its room");
                core.context.stats.plugins.panicked(&core.kind);
                self.plugin = None;
                self.failure = Some(message);
                None
            }
        }
    }

    /// Makes the room's plugin with `factory` from `params`.
    ///
    /// # Errors
    /// Why the plugin could not be made (its own reason, or that it panicked).
    pub(super) fn create(&mut self, factory: &Factory, params: &[u8], core: &RoomCore) -> Result<RoomSettings, String> {
        let started = Instant::now();
        let made = catch_unwind(AssertUnwindSafe(|| factory(&core.name, params)));
        self.record(Hook::Create, started.elapsed(), core);
        match made {
            Ok(Ok((plugin, settings))) => {
                self.plugin = Some(plugin);
                Ok(settings)
            }
            Ok(Err(reason)) => Err(reason),
            Err(panic) => {
                let message = panic_message(panic.as_ref());
                error!(room = %core.name, kind = %core.kind, hook = "create", panic = %message, "room plugin panicked");
                core.context.stats.plugins.panicked(&core.kind);
                Err("the room's plugin failed to start".to_owned())
            }
        }
    }

    fn record(&self, hook: Hook, took: Duration, core: &RoomCore) {
        let index = Hook::ALL.iter().position(|h| *h == hook);
        if let Some(histogram) = index.and_then(|i| self.histograms.get(i)) {
            histogram.observe(took.as_secs_f64());
        }
        if took > core.context.plugins.hook_budget {
            let took_us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
            warn!(room = %core.name, kind = %core.kind, hook = hook.as_str(), took_us, "room plugin hook over its budget (plugin_hook_budget_us)");
            core.context.stats.plugins.slow_hook(&core.kind, hook.as_str());
        }
    }
}

/// What a panic said, if it said it as text.
fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}
