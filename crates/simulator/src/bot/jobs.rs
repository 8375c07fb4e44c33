//! Jobs that render: per-user concurrency ("Job queued", "Queue full"), then the life cycle
//! waiting → progress updates with previews → final message → progress deleted, with the
//! job faults (`delete-progress`, `lose-final`, `stuck`) decided when the job starts.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::sync::{oneshot, watch};

use super::images::{self, Encoded};
use super::messages::{self, RED, YELLOW};
use super::{Ctx, post_error};
use crate::faults::Fault;
use crate::sim::{Delivery, Sim, Stopped, lock};
use crate::state::{ImageSource, JobRecord};

// ---------------------------------------------------------------------------------------
// Concurrency

#[derive(Default)]
struct Slots {
    running: usize,
    queue: VecDeque<oneshot::Sender<()>>,
}

/// Running and queued jobs per user.
#[derive(Default)]
pub(crate) struct Scheduler {
    users: Mutex<HashMap<u64, Slots>>,
}

/// The outcome of asking for a slot.
pub(crate) enum Admission {
    Now(Slot),
    /// Queued; the receiver fires when a slot is handed over.
    Queued(oneshot::Receiver<()>),
    Full,
}

/// A running job's place; dropping it hands the place to the next queued job.
pub(crate) struct Slot {
    scheduler: Arc<Scheduler>,
    user: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.scheduler.release(self.user);
    }
}

impl Scheduler {
    pub(crate) fn admit(self: &Arc<Self>, user: u64, running: usize, queued: usize) -> Admission {
        let mut users = lock(&self.users);
        let slots = users.entry(user).or_default();
        slots.queue.retain(|tx| !tx.is_closed());
        if slots.running < running.max(1) {
            slots.running += 1;
            Admission::Now(Slot {
                scheduler: Arc::clone(self),
                user,
            })
        } else if slots.queue.len() < queued {
            let (tx, rx) = oneshot::channel();
            slots.queue.push_back(tx);
            Admission::Queued(rx)
        } else {
            Admission::Full
        }
    }

    /// Turns a handed-over place into a slot.
    pub(crate) fn adopt(self: &Arc<Self>, user: u64) -> Slot {
        Slot {
            scheduler: Arc::clone(self),
            user,
        }
    }

    fn release(&self, user: u64) {
        let mut users = lock(&self.users);
        let Some(slots) = users.get_mut(&user) else {
            return;
        };
        while let Some(next) = slots.queue.pop_front() {
            if next.send(()).is_ok() {
                return;
            }
        }
        slots.running = slots.running.saturating_sub(1);
    }

    /// (running, queued) for a user.
    pub(crate) fn load(&self, user: u64) -> (usize, usize) {
        lock(&self.users)
            .get(&user)
            .map_or((0, 0), |s| (s.running, s.queue.len()))
    }
}

// ---------------------------------------------------------------------------------------
// Cancel buttons

/// The running jobs a cancel button can stop, by job UUID, with their owner.
#[derive(Default)]
pub(crate) struct Cancels {
    running: Mutex<HashMap<String, (u64, watch::Sender<bool>)>>,
}

/// A job's entry in [`Cancels`], removed when the job ends.
struct Cancelable<'a> {
    cancels: &'a Cancels,
    hash: String,
    canceled: watch::Receiver<bool>,
}

impl Drop for Cancelable<'_> {
    fn drop(&mut self) {
        lock(&self.cancels.running).remove(&self.hash);
    }
}

impl Cancels {
    fn register(&self, hash: &str, owner: u64) -> Cancelable<'_> {
        let (tx, rx) = watch::channel(false);
        lock(&self.running).insert(hash.to_owned(), (owner, tx));
        Cancelable {
            cancels: self,
            hash: hash.to_owned(),
            canceled: rx,
        }
    }

    /// Stops job `hash` if it runs for `user`; false when there is no such running job.
    pub(crate) fn cancel(&self, hash: &str, user: u64) -> bool {
        lock(&self.running)
            .get(hash)
            .filter(|(owner, _)| *owner == user)
            .is_some_and(|(_, tx)| tx.send(true).is_ok())
    }
}

/// Waits `duration`; `Ok(true)` when the job's cancel button was pressed meanwhile.
async fn pause(
    sim: &Sim,
    duration: std::time::Duration,
    canceled: &mut watch::Receiver<bool>,
) -> Result<bool, Stopped> {
    if *canceled.borrow() {
        return Ok(true);
    }
    tokio::select! {
        slept = sim.sleep(duration) => slept.map(|()| false),
        changed = canceled.wait_for(|c| *c) => Ok(changed.is_ok()),
    }
}

// ---------------------------------------------------------------------------------------
// The job

/// The words between " - " and the mention, while running and when done.
#[derive(Clone, Debug)]
pub(crate) struct Label {
    pub(crate) running: String,
    pub(crate) done: String,
}

impl Label {
    pub(crate) fn same(text: &str) -> Self {
        Self {
            running: text.to_owned(),
            done: text.to_owned(),
        }
    }
}

/// Which buttons the final message gets.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Finish {
    Grid,
    Hd,
    /// A video grid (animated WebP) with its clips' U1–U4.
    VideoGrid,
    /// One clip (MP4), clip `index` of its video grid, with Extend.
    Clip {
        index: u8,
    },
}

/// A rendering job, fully decided before it runs.
pub(crate) struct JobSpec {
    pub(crate) ctx: Ctx,
    /// Shown between `**`.
    pub(crate) prompt: String,
    pub(crate) label: Label,
    pub(crate) seed: u32,
    /// `Grid` paints; `Doubled` doubles a recorded job's image.
    pub(crate) source: ImageSource,
    pub(crate) finish: Finish,
    /// The message the final message replies to.
    pub(crate) parent: Option<Value>,
    /// Footer of the "Job queued" / "Queue full" embeds, e.g. `/imagine a fox`.
    pub(crate) footer: String,
}

/// Admits the job now (so queue order is submission order) and runs it in the background.
pub(crate) fn submit(sim: &Arc<Sim>, spec: JobSpec) {
    let admission = sim.bot.scheduler.admit(
        spec.ctx.user.id,
        sim.config.mj_concurrency,
        sim.config.mj_queue,
    );
    let sim = Arc::clone(sim);
    tokio::spawn(async move {
        let _ = run(&sim, spec, admission).await;
    });
}

async fn run(sim: &Arc<Sim>, spec: JobSpec, admission: Admission) -> Result<(), Stopped> {
    sim.sleep(sim.config.timing.before_waiting).await?;
    let slot = match admission {
        Admission::Now(slot) => slot,
        Admission::Full => {
            let embed = messages::embed(
                "Queue full",
                "You have too many jobs queued. Wait for some of your current jobs to finish before submitting more.",
                RED,
                Some(&spec.footer),
            );
            post_error(sim, &spec.ctx, &embed, 0);
            return Ok(());
        }
        Admission::Queued(handover) => {
            let embed = messages::embed(
                "Job queued",
                "You have reached the maximum allowed number of concurrent jobs. Your job will start once at least one of your current jobs finishes.",
                YELLOW,
                Some(&spec.footer),
            );
            post_error(sim, &spec.ctx, &embed, 0);
            let mut stopping = sim.stopping();
            tokio::select! {
                handed = handover => if handed.is_err() { return Ok(()) },
                _ = stopping.wait_for(|s| *s) => return Err(Stopped),
            }
            sim.bot.scheduler.adopt(spec.ctx.user.id)
        }
    };
    sim.stats.job_started();
    let outcome = life_cycle(sim, &spec).await;
    if let Ok(Outcome::Canceled) = outcome {
        sim.stats.job_canceled();
    }
    sim.stats
        .job_ended(matches!(outcome, Ok(Outcome::Finished)));
    drop(slot);
    if let Ok(Outcome::Stuck) = outcome {
        // Its slot is released, so a stuck job does not block the user's later jobs.
        sim.shutdown_signal().await;
    }
    Ok(())
}

/// How a started job ended.
enum Outcome {
    Finished,
    Failed,
    /// Left at some percentage for good (fault `stuck`).
    Stuck,
    /// Stopped by its cancel button: the progress message is deleted, no result is posted.
    Canceled,
}

/// Faults decided for one job.
struct JobFaults {
    /// Delete the progress message after this many updates.
    delete_after: Option<usize>,
    /// Stop for good after this many updates.
    stuck_after: Option<usize>,
    lose_final: bool,
}

fn roll_faults(sim: &Sim, steps: usize) -> JobFaults {
    let mut faults = sim.faults();
    let at = |fault: Fault, faults: &mut crate::faults::FaultBox| {
        faults
            .roll(fault)
            .then(|| faults.rng(fault).usize(..=steps))
    };
    let delete_after = at(Fault::DeleteProgress, &mut faults);
    let stuck_after = at(Fault::Stuck, &mut faults).map(|n| n.min(steps.saturating_sub(1)));
    let lose_final = faults.roll(Fault::LoseFinal);
    JobFaults {
        delete_after,
        stuck_after,
        lose_final,
    }
}

async fn life_cycle(sim: &Arc<Sim>, spec: &JobSpec) -> Result<Outcome, Stopped> {
    let ctx = &spec.ctx;
    let hash = sim.ids.uuid();
    let render = {
        let (sim, hash, source) = (Arc::clone(sim), hash.clone(), spec.source.clone());
        tokio::spawn(images::blocking(move || render(&sim, &hash, &source)))
    };
    let steps = sim.config.timing.steps.clone();
    let faults = roll_faults(sim, steps.len());
    let uid = ctx.user.id;
    let mut cancelable = sim.bot.cancels.register(&hash, uid);

    let progress_id = sim.ids.snowflake();
    let canceled = |deleted: bool| {
        if !deleted {
            sim.delete(ctx.channel_id, progress_id);
        }
        Ok(Outcome::Canceled)
    };
    let waiting = messages::job_line(&spec.prompt, &spec.label.running, uid, "(Waiting to start)");
    let progress = messages::base(ctx, progress_id, &waiting);
    sim.post(&progress, Delivery::Normal);

    let mut deleted = false;
    let mut preview: Option<Value> = None;
    let mut rendered: Option<Option<Encoded>> = None;
    let mut render = Some(render);
    for (done, percent) in steps.iter().enumerate() {
        if faults.delete_after == Some(done) && !deleted {
            sim.delete(ctx.channel_id, progress_id);
            deleted = true;
        }
        if faults.stuck_after == Some(done) {
            return Ok(Outcome::Stuck);
        }
        if pause(sim, sim.config.timing.step, &mut cancelable.canceled).await? {
            return canceled(deleted);
        }
        if deleted {
            continue;
        }
        if *percent > 0 && preview.is_none() {
            if rendered.is_none()
                && let Some(task) = render.take()
            {
                rendered = Some(task.await.ok().flatten().flatten());
            }
            if let Some(Some(image)) = &rendered {
                preview = preview_attachment(sim, ctx.channel_id, &hash, image.bytes.clone()).await;
            }
        }
        let mode = messages::mode(sim, uid);
        let line = messages::job_line(
            &spec.prompt,
            &spec.label.running,
            uid,
            &format!("({percent}%) ({mode})"),
        );
        let mut update = messages::edited(progress.clone(), &line);
        if *percent > 0
            && let Some(preview) = &preview
        {
            update["attachments"] = json!([preview]);
        }
        // A running job's message carries its cancel button, which names the job.
        update["components"] = messages::cancel_buttons(&hash);
        if !sim.edit(&update) {
            deleted = true;
        }
    }
    if faults.stuck_after.is_some() {
        return Ok(Outcome::Stuck);
    }
    if !deleted && faults.delete_after == Some(steps.len()) {
        sim.delete(ctx.channel_id, progress_id);
        deleted = true;
    }
    if !steps.is_empty() && pause(sim, sim.config.timing.step, &mut cancelable.canceled).await? {
        return canceled(deleted);
    }
    let image = match (rendered, render) {
        (Some(image), _) => image,
        (None, Some(task)) => task.await.ok().flatten().flatten(),
        (None, None) => None,
    };
    let Some(image) = image else {
        let failed = messages::base(
            ctx,
            sim.ids.snowflake(),
            &format!("Failed to process your command <@{uid}> 😭"),
        );
        sim.post(&failed, Delivery::Normal);
        if !deleted {
            sim.delete(ctx.channel_id, progress_id);
        }
        return Ok(Outcome::Failed);
    };
    let final_message = final_message(sim, spec, &hash, &image);
    record(sim, spec, &hash, &final_message);
    let delivery = if faults.lose_final {
        Delivery::Silent
    } else {
        Delivery::Normal
    };
    sim.post(&final_message, delivery);
    if !deleted {
        sim.delete(ctx.channel_id, progress_id);
    }
    Ok(Outcome::Finished)
}

fn render(sim: &Sim, hash: &str, source: &ImageSource) -> Option<Encoded> {
    match source {
        ImageSource::Grid { prompt, seed } => images::paint(sim, hash, prompt, *seed),
        ImageSource::Doubled { of } => {
            let doubled = images::double(&*images::resolve(sim, of)?);
            let encoded = images::png(&doubled);
            sim.bot.images_put(hash, doubled);
            encoded
        }
        ImageSource::Quadrant { grid, index } => {
            images::png(&images::quadrant(&*images::resolve(sim, grid)?, *index))
        }
        ImageSource::Clip { prompt, seed, kind } => super::video::render(sim, prompt, *seed, *kind),
    }
}

async fn preview_attachment(
    sim: &Arc<Sim>,
    channel_id: u64,
    hash: &str,
    png: axum::body::Bytes,
) -> Option<Value> {
    let key = hash.to_owned();
    let sim2 = Arc::clone(sim);
    let preview = images::blocking(move || match sim2.bot.images_get(&key) {
        Some(image) => images::preview(&image),
        None => images::preview(&images::decode(&png)?),
    })
    .await
    .flatten()?;
    let id = sim.ids.snowflake();
    let filename = format!("{hash}_grid_0.webp");
    let path = format!("/ephemeral-attachments/{channel_id}/{id}/{filename}");
    let size = preview.bytes.len();
    sim.put_blob(path.clone(), preview.bytes, "image/webp");
    Some(messages::attachment(
        sim,
        &path,
        id,
        &filename,
        size,
        preview.size,
    ))
}

fn final_message(sim: &Sim, spec: &JobSpec, hash: &str, image: &Encoded) -> Value {
    let ctx = &spec.ctx;
    let id = sim.ids.snowflake();
    let mode = messages::mode(sim, ctx.user.id);
    let content = messages::job_line(
        &spec.prompt,
        &spec.label.done,
        ctx.user.id,
        &format!("({mode})"),
    );
    let mut message = messages::base(ctx, id, &content);
    let attachment_id = sim.ids.snowflake();
    let filename = match spec.finish {
        Finish::Grid | Finish::Hd => messages::file_name(&ctx.user.username, &spec.prompt, hash),
        Finish::VideoGrid | Finish::Clip { .. } => super::video::file_name(spec.finish, hash),
    };
    let path = format!("/attachments/{}/{attachment_id}/{filename}", ctx.channel_id);
    sim.put_blob(
        path.clone(),
        image.bytes.clone(),
        crate::cdn::mime(&filename),
    );
    message["attachments"] = json!([messages::attachment(
        sim,
        &path,
        attachment_id,
        &filename,
        image.bytes.len(),
        image.size
    )]);
    message["components"] = match spec.finish {
        Finish::Grid => messages::grid_buttons(hash),
        Finish::Hd => messages::hd_buttons(hash),
        Finish::VideoGrid => super::video::grid_buttons(hash),
        Finish::Clip { .. } => super::video::clip_buttons(hash),
    };
    if let Some(parent) = &spec.parent {
        messages::reply_to(&mut message, parent);
        if ctx.kind == 2 {
            message["type"] = json!(20);
        }
    }
    message
}

fn record(sim: &Sim, spec: &JobSpec, hash: &str, message: &Value) {
    let message_id = crate::sim::id_of(message, "id").unwrap_or_default();
    sim.world().jobs.insert(
        hash.to_owned(),
        JobRecord {
            owner: spec.ctx.user.id,
            app: spec.ctx.app,
            prompt: spec.prompt.clone(),
            seed: spec.seed,
            source: spec.source.clone(),
            message_id,
            children: 0,
        },
    );
}
