//! The in-process event bus. Events are persisted first (the catalogue is the source of
//! truth and can replay them); the bus only tells live listeners in this process, and this
//! process's workers of a cancellation. Idle workers wait on the queue (`Queue::wait_for_work`),
//! which hears of work queued by any process its database can tell it about.

use tokio::sync::broadcast;

use crate::domain::{Event, GenerationId};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Signal {
    /// Someone asked to cancel this generation.
    Cancel(GenerationId),
}

pub struct Bus {
    events: broadcast::Sender<Event>,
    signals: broadcast::Sender<Signal>,
}

impl Default for Bus {
    fn default() -> Self {
        Self {
            events: broadcast::channel(1024).0,
            signals: broadcast::channel(256).0,
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
    }

    pub fn signals(&self) -> broadcast::Receiver<Signal> {
        self.signals.subscribe()
    }
}
