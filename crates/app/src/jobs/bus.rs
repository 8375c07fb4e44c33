//! The in-process event bus. Events are persisted first (the catalogue is the source of
//! truth and can replay them); the bus only tells live listeners and wakes idle workers.

use tokio::sync::{Notify, broadcast};

use crate::domain::{Event, GenerationId};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Signal {
    /// A job became runnable.
    JobQueued,
    /// Someone asked to cancel this generation.
    Cancel(GenerationId),
}

pub struct Bus {
    events: broadcast::Sender<Event>,
    signals: broadcast::Sender<Signal>,
    wake: Notify,
}

impl Default for Bus {
    fn default() -> Self {
        Self {
            events: broadcast::channel(1024).0,
            signals: broadcast::channel(256).0,
            wake: Notify::new(),
        }
    }
}

impl Bus {
    pub fn publish(&self, event: Event) {
        // No listener is fine: events are in the catalogue.
        let _ = self.events.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    pub fn signal(&self, signal: Signal) {
        let _ = self.signals.send(signal);
        if signal == Signal::JobQueued {
            self.wake.notify_waiters();
        }
    }

    pub fn signals(&self) -> broadcast::Receiver<Signal> {
        self.signals.subscribe()
    }

    /// Resolves at the next `JobQueued` signal (or job end, which may free a slot).
    pub async fn woken(&self) {
        self.wake.notified().await;
    }

    pub fn wake_workers(&self) {
        self.wake.notify_waiters();
    }
}
