//! Dynamic micro-batching: small concurrent requests to a batchable model
//! ([`ModelCapabilities::batchable`](cairn_plugin_api::flavor::ModelCapabilities)) are stacked
//! by rows into one inference call and the output is cut back into one answer per request.
//!
//! At most `slots` inference calls run at once (one per core, as the flavors' pools have).
//! A request of at most [`MERGE_MAX_ROWS`] rows that finds a slot free and nobody queued runs at
//! once, on its own task (no hand-off to the merging task: at low load a request costs no more
//! than a direct call). Otherwise it waits in a queue, only while every slot is busy, so its
//! wait is bounded by one inference call; when a slot frees, the queued requests with the same
//! layout (tensor names, types and shapes past
//! the first dimension, or table columns, and the same params) go in one call, up to
//! [`BATCH_MAX_ROWS`] rows. If the merged call fails or its output does not split by rows,
//! each request runs alone, so every request gets its own answer or error.
//!
//! A request holding JSON values (lists or dicts in its cells, e.g. a chat model's messages)
//! is never merged: its rows are parts of one document more often than independent rows, so
//! stacking two requests would show the model one longer conversation, and a model that answers
//! it with one value would then be called again per request.

use super::metrics::Metrics;
use cairn_plugin_api::LoadedModel;
use cairn_plugin_api::Result;
use cairn_plugin_api::flavor::{DType, ModelData, Params, Schema, Signature};
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc, oneshot};

/// Requests of more rows run on their own.
pub const MERGE_MAX_ROWS: usize = 16;
/// The most rows one merged call takes.
pub const BATCH_MAX_ROWS: usize = 256;

/// One queued request.
struct Job {
    input: ModelData,
    params: Params,
    /// What requests stack with this one.
    layout: String,
    reply: oneshot::Sender<Result<ModelData>>,
}

/// Runs predictions for the scoring server, merging requests where the model allows.
pub struct Batcher {
    model: Arc<dyn LoadedModel>,
    metrics: Arc<Metrics>,
    /// `None` when the model is not batchable (or batching is off).
    queue: Option<mpsc::UnboundedSender<Job>>,
    /// The inference slots, shared with the merging task.
    slots: Arc<Semaphore>,
    /// What requests are read against ([`Batcher::signature`]), computed once.
    signature: Signature,
    python: bool,
}

impl Batcher {
    /// Calls the model once per request.
    pub fn direct(model: Arc<dyn LoadedModel>, metrics: Arc<Metrics>) -> Batcher {
        let python = model.capabilities().python_function;
        let mut signature = model.signature();
        if python && let Some(Schema::Columns(specs)) = &mut signature.inputs {
            // A Python model enforces its schema itself (MLflow's `_enforce_schema`, with
            // MLflow's words): a missing column is left for it to refuse.
            for spec in specs {
                spec.required = false;
            }
        }
        Batcher {
            model,
            metrics,
            queue: None,
            slots: Arc::new(Semaphore::new(0)),
            signature,
            python,
        }
    }

    /// Merges requests when the model is batchable, with at most `slots` inference calls at
    /// once; needs a tokio runtime (the merging task runs on it).
    pub fn new(model: Arc<dyn LoadedModel>, metrics: Arc<Metrics>, slots: usize) -> Batcher {
        if !model.capabilities().batchable {
            return Batcher::direct(model, metrics);
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let slots = Arc::new(Semaphore::new(slots.max(1)));
        tokio::spawn(merge(model.clone(), metrics.clone(), rx, slots.clone()));
        Batcher {
            queue: Some(tx),
            slots,
            ..Batcher::direct(model, metrics)
        }
    }

    /// The model.
    pub fn model(&self) -> &dyn LoadedModel {
        &*self.model
    }

    /// The model's signature as requests are read against it: a Python model's columns are
    /// all optional there (it enforces its schema itself, in MLflow's words).
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// Whether the model runs in Python workers (`python_function`).
    pub fn python(&self) -> bool {
        self.python
    }

    /// The model's prediction for `input`, possibly computed together with other requests'.
    pub async fn predict(&self, input: ModelData, params: Params) -> Result<ModelData> {
        let small =
            input.rows().is_some_and(|r| r > 0 && r <= MERGE_MAX_ROWS) && !holds_json(&input);
        let (Some(queue), true) = (&self.queue, small) else {
            self.metrics.batch(1);
            return self.model.predict(input, params).await;
        };
        // Nobody queued and a slot free: this request cannot merge with anything, so it runs
        // now rather than through the merging task.
        if self.metrics.queue_depth() == 0
            && let Ok(slot) = self.slots.try_acquire()
        {
            self.metrics.batch(1);
            let out = self.model.predict(input, params).await;
            drop(slot);
            return out;
        }
        let (reply, answer) = oneshot::channel();
        let job = Job {
            layout: layout(&input, &params),
            input,
            params,
            reply,
        };
        self.metrics.queued(1);
        if let Err(mpsc::error::SendError(job)) = queue.send(job) {
            // The merging task is gone (the runtime is shutting down): answer directly.
            self.metrics.queued(-1);
            self.metrics.batch(1);
            return self.model.predict(job.input, job.params).await;
        }
        match answer.await {
            Ok(result) => result,
            Err(_) => Err(cairn_plugin_api::Error::internal(
                "the batching task dropped the request",
            )),
        }
    }
}

/// Whether any tensor or column of `input` holds JSON values (see the module documentation).
fn holds_json(input: &ModelData) -> bool {
    match input {
        ModelData::Tensors(m) => m.values().any(|t| t.dtype() == DType::Json),
        ModelData::Table(t) => t
            .columns()
            .iter()
            .any(|c| c.values().dtype() == DType::Json),
    }
}

/// What a request stacks with: its params and its data's layout past the rows.
fn layout(input: &ModelData, params: &Params) -> String {
    let data = match input {
        ModelData::Tensors(m) => m
            .iter()
            .map(|(name, t)| format!("{name:?}:{:?}{:?}", t.dtype(), &t.shape()[1..]))
            .collect::<Vec<_>>()
            .join(","),
        ModelData::Table(t) => t
            .columns()
            .iter()
            .map(|c| format!("{:?}:{:?}", c.name(), c.values().dtype()))
            .collect::<Vec<_>>()
            .join(","),
    };
    let kind = if matches!(input, ModelData::Table(_)) {
        "table"
    } else {
        "tensors"
    };
    format!(
        "{kind}[{data}]{}",
        serde_json::to_string(params).unwrap_or_default()
    )
}

/// The merging task: waits for a request, then for a free slot, then takes every queued
/// request that stacks with the first.
async fn merge(
    model: Arc<dyn LoadedModel>,
    metrics: Arc<Metrics>,
    mut rx: mpsc::UnboundedReceiver<Job>,
    slots: Arc<Semaphore>,
) {
    let mut waiting: VecDeque<Job> = VecDeque::new();
    loop {
        let first = match waiting.pop_front() {
            Some(job) => job,
            None => match rx.recv().await {
                Some(job) => job,
                None => return,
            },
        };
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        while let Ok(job) = rx.try_recv() {
            waiting.push_back(job);
        }
        let mut rows = first.input.rows().unwrap_or(0);
        let mut batch = vec![first];
        let mut rest = VecDeque::with_capacity(waiting.len());
        for job in waiting.drain(..) {
            let n = job.input.rows().unwrap_or(0);
            if job.layout == batch[0].layout && rows + n <= BATCH_MAX_ROWS {
                rows += n;
                batch.push(job);
            } else {
                rest.push_back(job);
            }
        }
        waiting = rest;
        metrics.queued(-(batch.len() as isize));
        let (model, metrics) = (model.clone(), metrics.clone());
        tokio::spawn(async move {
            run(&*model, &metrics, batch).await;
            drop(slot);
        });
    }
}

/// One inference call for `batch` (or one per request when merging does not work out).
async fn run(model: &dyn LoadedModel, metrics: &Metrics, mut batch: Vec<Job>) {
    if batch.len() > 1 {
        let sizes: Vec<usize> = batch.iter().map(|j| j.input.rows().unwrap_or(0)).collect();
        let merged = ModelData::concat_rows(&batch.iter().map(|j| &j.input).collect::<Vec<_>>());
        if let Ok(merged) = merged {
            let params = batch[0].params.clone();
            let split = match model.predict(merged, params).await {
                Ok(out) => out.split_rows(&sizes).ok(),
                Err(_) => None,
            };
            if let Some(outputs) = split {
                metrics.batch(batch.len());
                for (job, out) in batch.into_iter().zip(outputs) {
                    let _ = job.reply.send(Ok(out));
                }
                return;
            }
        }
    }
    for job in batch.drain(..) {
        metrics.batch(1);
        let _ = job.reply.send(model.predict(job.input, job.params).await);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_plugin_api::async_trait;
    use cairn_plugin_api::flavor::{ModelCapabilities, Tensor, TensorData};
    use std::sync::Mutex;

    /// A batchable model echoing its input; it records the rows of every call and waits for
    /// the test to open `gate` before answering.
    struct Echo {
        calls: Mutex<Vec<usize>>,
        gate: Semaphore,
    }

    #[async_trait]
    impl LoadedModel for Echo {
        fn signature(&self) -> Signature {
            Signature::default()
        }
        fn capabilities(&self) -> ModelCapabilities {
            ModelCapabilities::new(true, true, false)
        }
        async fn predict(&self, input: ModelData, _: Params) -> Result<ModelData> {
            self.calls.lock().unwrap().push(input.rows().unwrap_or(0));
            self.gate.acquire().await.unwrap().forget();
            Ok(input)
        }
    }

    fn tensors(data: TensorData) -> ModelData {
        let rows = data.len();
        ModelData::Tensors([("x".to_string(), Tensor::new(vec![rows], data).unwrap())].into())
    }

    /// Queued requests of plain numbers merge; requests holding JSON values (a chat model's
    /// messages) each get a call of their own.
    #[tokio::test]
    async fn requests_holding_json_values_are_never_merged() {
        for (json, want) in [(false, vec![1, 3]), (true, vec![1, 1, 1, 1])] {
            let model = Arc::new(Echo {
                calls: Mutex::default(),
                gate: Semaphore::new(0),
            });
            let metrics = Arc::new(Metrics::default());
            let batcher = Arc::new(Batcher::new(model.clone(), metrics.clone(), 1));
            let send = |k: usize| {
                let batcher = batcher.clone();
                let data = if json {
                    TensorData::Json(vec![format!("{{\"role\":\"user\",\"content\":\"{k}\"}}")])
                } else {
                    TensorData::Float64(vec![k as f64])
                };
                tokio::spawn(async move { batcher.predict(tensors(data), Params::default()).await })
            };
            // The first request holds the only slot; three more arrive meanwhile.
            let first = send(0);
            while model.calls.lock().unwrap().is_empty() {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            let rest: Vec<_> = (1..=3).map(send).collect();
            // Every request is either in a call of its own or queued to merge.
            while model.calls.lock().unwrap().len() + metrics.queue_depth() < 4 {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            model.gate.add_permits(100);
            for (k, task) in std::iter::once(first).chain(rest).enumerate() {
                let out = task.await.unwrap().unwrap();
                assert_eq!(
                    out.rows(),
                    Some(1),
                    "request {k} got another request's rows"
                );
            }
            let mut calls = model.calls.lock().unwrap().clone();
            calls.sort();
            assert_eq!(calls, want, "json: {json}");
        }
    }
}
