//! A generation's life cycle, decided once: what one step does to the stored generation and
//! which event records it. Every catalogue reads the generation's [`Stage`] under a lock (a
//! write transaction on `SQLite`, a row lock on `PostgreSQL`), asks [`Stage::apply`] for the
//! next one, and persists both; no database repeats these rules in SQL.

use time::OffsetDateTime;

use super::{
    Event, EventKind, Failure, Generation, GenerationId, GenerationStatus, ImageId, Phase,
};

/// One step a job asks for: its event's kind and the state it reports. The catalogue turns it
/// into the stored step with [`Stage::apply`].
#[derive(Clone, Debug)]
pub struct Change {
    pub kind: EventKind,
    pub status: GenerationStatus,
    pub phase: Option<Phase>,
    /// Raised only: a lower value than the stored one is ignored.
    pub progress: f64,
    pub index: Option<u8>,
    pub image_id: Option<ImageId>,
    pub error: Option<Failure>,
}

impl Change {
    pub fn new(kind: EventKind, status: GenerationStatus, progress: f64) -> Self {
        Self {
            kind,
            status,
            phase: None,
            progress,
            index: None,
            image_id: None,
            error: None,
        }
    }

    #[must_use]
    pub fn phase(mut self, phase: Phase) -> Self {
        self.phase = Some(phase);
        self
    }
}

/// The part of a generation its steps change, and the number of its last event.
#[derive(Clone, PartialEq, Debug)]
pub struct Stage {
    pub id: GenerationId,
    pub status: GenerationStatus,
    pub phase: Option<Phase>,
    pub progress: f64,
    /// Set only by a failed or canceled step; an error on any other step is a notice.
    pub error: Option<Failure>,
    pub started_at: Option<OffsetDateTime>,
    pub completed_at: Option<OffsetDateTime>,
    pub last_seq: u64,
}

/// Why a step was refused. Nothing of a refused batch is to be written.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum StepRefused {
    #[error("generation {0} is already {1}")]
    Ended(GenerationId, &'static str),
    #[error("only the last step of a batch may end the generation")]
    EndBeforeLast,
}

impl Stage {
    /// The stage of a stored generation whose last event is `last_seq`.
    pub fn of(g: &Generation, last_seq: u64) -> Self {
        Self {
            id: g.id,
            status: g.status,
            phase: g.phase,
            progress: g.progress,
            error: g.error.clone(),
            started_at: g.started_at,
            completed_at: g.completed_at,
            last_seq,
        }
    }

    /// Applies one step at `at` and returns its event. The status only moves forward
    /// ([`GenerationStatus::can_become`]; a step that would move it back keeps it), a missing
    /// phase keeps the current one, progress is only raised, the first `running` step sets
    /// `started_at` and an end sets `completed_at`. A generation that has ended takes no step.
    pub fn apply(&mut self, c: &Change, at: OffsetDateTime) -> Result<Event, StepRefused> {
        if self.status.is_terminal() {
            return Err(StepRefused::Ended(self.id, self.status.as_str()));
        }
        if self.status.can_become(c.status) {
            self.status = c.status;
        }
        self.phase = c.phase.or(self.phase);
        self.progress = self.progress.max(c.progress);
        if matches!(
            self.status,
            GenerationStatus::Failed | GenerationStatus::Canceled
        ) && c.error.is_some()
        {
            self.error.clone_from(&c.error);
        }
        if self.started_at.is_none() && self.status == GenerationStatus::Running {
            self.started_at = Some(at);
        }
        if self.status.is_terminal() {
            self.completed_at = Some(at);
        }
        self.last_seq += 1;
        Ok(Event {
            generation_id: self.id,
            seq: self.last_seq,
            kind: c.kind,
            at,
            status: self.status,
            phase: self.phase,
            progress: self.progress,
            index: c.index,
            image_id: c.image_id,
            error: c.error.clone(),
        })
    }

    /// Applies several steps in order, each judged after the ones before it; only the last
    /// may end the generation. On a refusal the stage is left as it was.
    pub fn apply_all(
        &mut self,
        changes: &[Change],
        at: OffsetDateTime,
    ) -> Result<Vec<Event>, StepRefused> {
        if let Some((_, init)) = changes.split_last()
            && init.iter().any(|c| c.status.is_terminal())
        {
            return Err(StepRefused::EndBeforeLast);
        }
        let mut next = self.clone();
        let events = changes
            .iter()
            .map(|c| next.apply(c, at))
            .collect::<Result<Vec<_>, _>>()?;
        *self = next;
        Ok(events)
    }
}

/// The events a new generation is written with: `generation.created` (seq 1) with its state,
/// and `generation.completed` (seq 2) when it is created already succeeded (an import).
pub fn creation_events(g: &Generation) -> Vec<Event> {
    let event = |seq, kind, at| Event {
        generation_id: g.id,
        seq,
        kind,
        at,
        status: g.status,
        phase: g.phase,
        progress: g.progress,
        index: None,
        image_id: None,
        error: g.error.clone(),
    };
    let mut events = vec![event(1, EventKind::Created, g.created_at)];
    if g.status == GenerationStatus::Succeeded {
        let mut done = event(
            2,
            EventKind::Completed,
            g.completed_at.unwrap_or(g.created_at),
        );
        done.error = None;
        events.push(done);
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ErrorCode, GenerationKind, Parameters};

    fn stage() -> Stage {
        let g = Generation::queued(
            "sandbox".into(),
            GenerationKind::Imagine,
            "a cat".into(),
            Parameters::default(),
        );
        Stage::of(&g, 1)
    }

    fn at(s: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(s).expect("a valid time")
    }

    #[test]
    fn a_step_moves_forward_only_and_raises_progress_only() {
        let mut s = stage();
        let e = s
            .apply(
                &Change::new(EventKind::Progress, GenerationStatus::Running, 10.0)
                    .phase(Phase::GridRendering),
                at(1),
            )
            .expect("a step");
        assert_eq!(
            (e.seq, e.status, e.progress),
            (2, GenerationStatus::Running, 10.0)
        );
        assert_eq!(s.started_at, Some(at(1)));
        // `submitted` after `running` keeps `running`; 5 after 10 keeps 10; no phase keeps it.
        let e = s
            .apply(
                &Change::new(EventKind::Progress, GenerationStatus::Submitted, 5.0),
                at(2),
            )
            .expect("a step");
        assert_eq!(
            (e.seq, e.status, e.progress, e.phase),
            (
                3,
                GenerationStatus::Running,
                10.0,
                Some(Phase::GridRendering)
            )
        );
        assert_eq!(s.started_at, Some(at(1)), "started once");
    }

    #[test]
    fn only_an_end_sets_the_error_and_nothing_follows_an_end() {
        let mut s = stage();
        let notice = Failure::new(ErrorCode::ProviderUnavailable, "moved");
        let mut c = Change::new(EventKind::Progress, GenerationStatus::Running, 1.0);
        c.error = Some(notice.clone());
        let e = s.apply(&c, at(1)).expect("a step");
        assert_eq!(e.error, Some(notice), "the event keeps its notice");
        assert_eq!(s.error, None, "the generation does not");
        let mut end = Change::new(EventKind::Failed, GenerationStatus::Failed, 1.0);
        end.error = Some(Failure::new(ErrorCode::Timeout, "too slow"));
        s.apply(&end, at(2)).expect("the end");
        assert_eq!(s.error.as_ref().map(|f| f.code), Some(ErrorCode::Timeout));
        assert_eq!(s.completed_at, Some(at(2)));
        assert_eq!(s.apply(&c, at(3)), Err(StepRefused::Ended(s.id, "failed")),);
    }

    #[test]
    fn a_batch_is_judged_step_by_step_and_refused_whole() {
        let mut s = stage();
        let before = s.clone();
        let steps = [
            Change::new(EventKind::Completed, GenerationStatus::Succeeded, 100.0),
            Change::new(EventKind::Progress, GenerationStatus::Running, 50.0),
        ];
        assert_eq!(s.apply_all(&steps, at(1)), Err(StepRefused::EndBeforeLast));
        assert_eq!(s, before);
        let steps = [
            Change::new(EventKind::Progress, GenerationStatus::Running, 50.0),
            Change::new(EventKind::Progress, GenerationStatus::Running, 40.0),
            Change::new(EventKind::Completed, GenerationStatus::Succeeded, 100.0),
        ];
        let events = s.apply_all(&steps, at(1)).expect("a batch");
        let seen: Vec<_> = events.iter().map(|e| (e.seq, e.progress)).collect();
        assert_eq!(seen, [(2, 50.0), (3, 50.0), (4, 100.0)]);
        assert_eq!(s.status, GenerationStatus::Succeeded);
    }

    #[test]
    fn an_import_is_created_with_its_end() {
        let mut g = Generation::queued(
            "import".into(),
            GenerationKind::Import,
            "x".into(),
            Parameters::default(),
        );
        assert_eq!(creation_events(&g).len(), 1);
        g.status = GenerationStatus::Succeeded;
        let kinds: Vec<_> = creation_events(&g)
            .iter()
            .map(|e| (e.seq, e.kind))
            .collect();
        assert_eq!(kinds, [(1, EventKind::Created), (2, EventKind::Completed)]);
    }
}
