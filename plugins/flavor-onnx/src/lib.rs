//! Cairn's `onnx` model flavor: ONNX models (api.md §6.4) run natively on
//! [tract](https://github.com/sonos/tract), without Python or onnxruntime.
//!
//! * The model file is the flavor's `data` (default `model.onnx`); external-data files next to
//!   it are read by tract. `providers` and `onnx_session_options` are accepted and ignored
//!   (there is one CPU engine).
//! * Inputs are bound by name; an unnamed single tensor (`""`) or a table feeds a model with
//!   one input (a table's columns become the 2-D `[rows, columns]` tensor, as MLflow feeds
//!   `df.values`), and a table feeds a model with several inputs column by column.
//! * float64 input is cast to float32 where the graph wants `tensor(float)`, as MLflow does;
//!   integer input is widened the same way to what the graph declares.
//! * Dimensions the graph leaves open (a dynamic batch) are symbols, resolved per call by one
//!   plan optimised for any size. A size asked for repeatedly (the batch size a client always
//!   sends) gets a plan optimised for that size, built in the background (its kernels chosen
//!   for the known shapes); a few such plans are kept, least recently used dropped first.
//! * Inference runs on a thread of the flavor's pool, never on the caller's async executor —
//!   except a small input (at most `QUICK_ELEMENTS` elements) of a model whose last small
//!   call took less than `QUICK`: for it the hand-off to the pool and back costs more than
//!   the call, so it runs where it is asked.

use async_trait::async_trait;
use cairn_plugin_api::blocking::BlockingPool;
use cairn_plugin_api::flavor::{
    DType, MlModel, ModelCapabilities, ModelData, Params, Schema, Signature, Tensor, TensorData,
    TensorSpec,
};
use cairn_plugin_api::{
    Build, BuildContext, Error, ErrorKind, LoadedModel, ModelFlavor, PluginFactory, Result,
};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tract_onnx::prelude::{
    Datum, DatumType, Framework, InferenceFact, InferenceModelExt, IntoRunnable, IntoTValue,
    Symbol, TDim, TypedFact, TypedModel, TypedSimplePlan, tract_ndarray,
};
use tract_onnx::tract_hir::infer::Factoid;
use tract_onnx::tract_hir::internal::DimLike;

/// The flavor name in `MLmodel`.
pub const FLAVOR: &str = "onnx";

cairn_plugin_api::inventory::submit! {
    PluginFactory {
        name: FLAVOR,
        plugin: env!("CARGO_PKG_NAME"),
        version: env!("CARGO_PKG_VERSION"),
        build: Build::ModelFlavor(build_flavor),
    }
}

fn build_flavor(_: &BuildContext) -> Result<Arc<dyn ModelFlavor>> {
    Ok(Arc::new(OnnxFlavor))
}

/// The `onnx` flavor.
#[derive(Debug, Default)]
pub struct OnnxFlavor;

#[async_trait]
impl ModelFlavor for OnnxFlavor {
    async fn load(&self, model_dir: &Path, model: &MlModel) -> Result<Arc<dyn LoadedModel>> {
        let config = model.flavors.get(FLAVOR).cloned().unwrap_or_default();
        let file = config
            .get("data")
            .and_then(|d| d.as_str())
            .unwrap_or("model.onnx")
            .to_string();
        let path = model_dir.join(&file);
        let declared = model.signature.clone();
        // Parsing and optimising a graph is CPU work: off the executor.
        off_executor(move || {
            OnnxModel::load(&path, declared).map(|m| Arc::new(Loaded(Arc::new(m))) as _)
        })
        .await
    }
}

/// One input or output of the graph.
#[derive(Debug, Clone)]
struct Port {
    name: String,
    datum: DatumType,
    /// Fixed dimensions; `None` where the graph leaves the dimension open.
    dims: Vec<Option<usize>>,
}

struct OnnxModel {
    /// The plan for any size of the open dimensions (symbols resolved per call).
    plan: Arc<TypedSimplePlan>,
    /// The decluttered graph, open dimensions as symbols, that plans for one size of them are
    /// optimised from; `None` when no input dimension is open (or sizing it failed once).
    symbolic: Option<TypedModel>,
    /// Each open input dimension: (input, axis, its symbol).
    open: Vec<(usize, usize, Symbol)>,
    sized: Mutex<SizedPlans>,
    /// The last small call was quick ([`QUICK`]): small calls run on the caller's thread.
    quick: AtomicBool,
    inputs: Vec<Port>,
    outputs: Vec<Port>,
    signature: Signature,
}

/// Plans optimised for one size of the open dimensions (the values of `open`, in order).
#[derive(Default)]
struct SizedPlans {
    /// Least recently used first; at most [`SIZED_PLANS`].
    plans: Vec<(Vec<usize>, Arc<TypedSimplePlan>)>,
    /// How many calls asked for each size without a plan (at most [`SEEN_SIZES`] sizes).
    seen: HashMap<Vec<usize>, u32>,
    /// The size whose plan is being built (one at a time).
    building: bool,
    /// Building one failed: the symbolic plan serves every size.
    off: bool,
}

/// How many sized plans a model keeps (each holds its own packed weights).
const SIZED_PLANS: usize = 4;
/// The call asking for a size that makes its plan be built.
const SIZED_AFTER: u32 = 2;
/// How many sizes without a plan are counted before the counts start over.
const SEEN_SIZES: usize = 64;

fn load_error(path: &Path, e: impl std::fmt::Display) -> Error {
    let text = format!("{e:#}");
    // tract names an operator it lacks ("Unimplemented(ZipMap)", "... is not supported").
    if let Some(op) = text
        .split("Unimplemented(")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
    {
        return Error::new(
            ErrorKind::Unsupported,
            format!(
                "the ONNX model {} uses the operator '{op}', which this build's ONNX engine \
                 (tract) does not implement",
                path.display()
            ),
        );
    }
    Error::invalid(format!(
        "cannot load the ONNX model {}: {text}",
        path.display()
    ))
}

/// tract 0.23's `TreeEnsembleClassifier` of two classes whose leaves weigh only the first
/// (what skl2onnx writes for every binary tree classifier) computes the right probabilities but
/// answers the first label for every row: it takes the argmax before completing the second
/// class's score. Such a node's label output is rewired to what ONNX defines it as, the label of
/// the highest probability: `Gather(labels, ArgMax(probabilities, axis=1))`.
fn relabel_binary_tree_classifiers(graph: &mut tract_onnx::pb::GraphProto) {
    use tract_onnx::pb::{AttributeProto, NodeProto, TensorProto, attribute_proto::AttributeType};
    let attr =
        |node: &NodeProto, name: &str| node.attribute.iter().find(|a| a.name == name).cloned();
    let mut i = 0;
    while i < graph.node.len() {
        let node = &graph.node[i];
        i += 1;
        let ids = attr(node, "class_ids").map(|a| a.ints).unwrap_or_default();
        let (ints, strings) = (
            attr(node, "classlabels_int64s")
                .map(|a| a.ints)
                .unwrap_or_default(),
            attr(node, "classlabels_strings")
                .map(|a| a.strings)
                .unwrap_or_default(),
        );
        let classes = ints.len().max(strings.len());
        if node.op_type != "TreeEnsembleClassifier"
            || classes != 2
            || ids.iter().any(|id| *id != 0)
            || node.output.len() < 2
        {
            continue;
        }
        let label = node.output[0].clone();
        let probabilities = node.output[1].clone();
        let name = |suffix: &str| format!("{label}__cairn_{suffix}");
        graph.node[i - 1].output[0] = name("tract_label");
        let labels = TensorProto {
            dims: vec![2],
            data_type: if strings.is_empty() { 7 } else { 8 }, // INT64, STRING
            int64_data: ints,
            string_data: strings,
            ..Default::default()
        };
        let int = |name: &str, i: i64| AttributeProto {
            name: name.into(),
            r#type: AttributeType::Int as i32,
            i,
            ..Default::default()
        };
        let node = |op: &str, inputs: Vec<String>, output: String, attribute| NodeProto {
            op_type: op.into(),
            name: output.clone(),
            input: inputs,
            output: vec![output],
            attribute,
            ..Default::default()
        };
        let added = [
            node(
                "Constant",
                vec![],
                name("labels"),
                vec![AttributeProto {
                    name: "value".into(),
                    r#type: AttributeType::Tensor as i32,
                    t: Some(labels),
                    ..Default::default()
                }],
            ),
            node(
                "ArgMax",
                vec![probabilities],
                name("argmax"),
                vec![int("axis", 1), int("keepdims", 0)],
            ),
            node(
                "Gather",
                vec![name("labels"), name("argmax")],
                label,
                vec![int("axis", 0)],
            ),
        ];
        for (k, n) in added.into_iter().enumerate() {
            graph.node.insert(i + k, n);
        }
        i += 3;
    }
}

impl OnnxModel {
    fn load(path: &Path, declared: Option<Signature>) -> Result<OnnxModel> {
        if !path.is_file() {
            return Err(Error::invalid(format!(
                "the ONNX model file {} does not exist",
                path.display()
            )));
        }
        let onnx = tract_onnx::onnx();
        let mut proto = onnx
            .proto_model_for_path(path)
            .map_err(|e| load_error(path, e))?;
        if let Some(graph) = proto.graph.as_mut() {
            relabel_binary_tree_classifiers(graph);
        }
        let dir = path.parent().and_then(Path::to_str);
        let parsed = onnx.parse(&proto, dir).map_err(|e| load_error(path, e))?;
        if !parsed.unresolved_inputs.is_empty() {
            return Err(load_error(
                path,
                format!("unresolved inputs {:?}", parsed.unresolved_inputs),
            ));
        }
        let mut model = parsed.model;
        // Open dimensions become symbols, resolved per call (a dynamic batch).
        for i in 0..model.inputs.len() {
            let fact = model
                .input_fact(i)
                .map_err(|e| load_error(path, e))?
                .clone();
            let Some(datum) = fact.datum_type.concretize() else {
                continue;
            };
            let dims: Vec<_> = fact.shape.dims().cloned().collect();
            let dims: Vec<TDim> = dims
                .into_iter()
                .enumerate()
                .map(|(d, dim)| {
                    dim.concretize()
                        .unwrap_or_else(|| model.symbols.sym(&format!("in{i}_{d}")).into())
                })
                .collect();
            model
                .set_input_fact(i, InferenceFact::dt_shape(datum, dims))
                .map_err(|e| load_error(path, e))?;
        }
        let decluttered = model
            .into_typed()
            .and_then(TypedModel::into_decluttered)
            .map_err(|e| load_error(path, e))?;
        // The open input dimensions that are plain symbols: a plan per size of them can be
        // optimised; any other open dimension (an expression) leaves only the symbolic plan.
        let mut open = Vec::new();
        let mut sizable = true;
        for (i, outlet) in decluttered.inputs.iter().enumerate() {
            let fact = decluttered
                .outlet_fact(*outlet)
                .map_err(|e| load_error(path, e))?;
            for (axis, dim) in fact.shape.iter().enumerate() {
                match dim {
                    TDim::Val(_) => {}
                    TDim::Sym(sym) => open.push((i, axis, sym.clone())),
                    _ => sizable = false,
                }
            }
        }
        let symbolic = (sizable && !open.is_empty()).then(|| decluttered.clone());
        let typed = decluttered
            .into_optimized()
            .map_err(|e| load_error(path, e))?;
        let port = |outlet: tract_onnx::prelude::OutletId, fact: &TypedFact| Port {
            name: typed
                .outlet_label(outlet)
                .unwrap_or(&typed.node(outlet.node).name)
                .to_string(),
            datum: fact.datum_type,
            dims: fact.shape.iter().map(|d| d.to_usize().ok()).collect(),
        };
        let inputs = typed
            .inputs
            .iter()
            .map(|o| {
                Ok(port(
                    *o,
                    typed.outlet_fact(*o).map_err(|e| load_error(path, e))?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let outputs = typed
            .outputs
            .iter()
            .map(|o| {
                Ok(port(
                    *o,
                    typed.outlet_fact(*o).map_err(|e| load_error(path, e))?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let specs = |ports: &[Port]| {
            ports
                .iter()
                .map(|p| {
                    Some(TensorSpec {
                        name: Some(p.name.clone()),
                        dtype: dtype_of(p.datum)?,
                        shape: p.dims.iter().map(|d| d.map_or(-1, |d| d as i64)).collect(),
                    })
                })
                .collect::<Option<Vec<_>>>()
                .map(Schema::Tensors)
        };
        let declared = declared.unwrap_or_default();
        let signature = Signature {
            inputs: declared.inputs.or_else(|| specs(&inputs)),
            outputs: declared.outputs.or_else(|| specs(&outputs)),
            params: declared.params,
        };
        let plan = typed.into_runnable().map_err(|e| load_error(path, e))?;
        Ok(OnnxModel {
            plan,
            symbolic,
            open,
            sized: Mutex::default(),
            quick: AtomicBool::new(false),
            inputs,
            outputs,
            signature,
        })
    }

    /// The plan for inputs of these shapes: the one optimised for their size of the open
    /// dimensions if there is one, else the symbolic plan (and, on the [`SIZED_AFTER`]th call
    /// for this size, a sized plan starts being built in the background).
    fn plan_for(self: &Arc<Self>, inputs: &[tract_onnx::prelude::Tensor]) -> Arc<TypedSimplePlan> {
        if self.symbolic.is_none() {
            return self.plan.clone();
        }
        let size: Vec<usize> = self
            .open
            .iter()
            .map(|(i, axis, _)| inputs.get(*i).map_or(0, |t| t.shape()[*axis]))
            .collect();
        let mut guard = self.sized.lock().unwrap_or_else(|e| e.into_inner());
        let sized = &mut *guard;
        if let Some(k) = sized.plans.iter().position(|(s, _)| *s == size) {
            let entry = sized.plans.remove(k);
            let plan = entry.1.clone();
            sized.plans.push(entry);
            return plan;
        }
        if sized.off {
            return self.plan.clone();
        }
        if sized.seen.len() >= SEEN_SIZES && !sized.seen.contains_key(&size) {
            sized.seen.clear();
        }
        let seen = sized.seen.entry(size.clone()).or_insert(0);
        *seen += 1;
        let seen = *seen;
        if seen >= SIZED_AFTER && !sized.building {
            sized.building = true;
            let me = self.clone();
            pool().spawn(move |_| me.build_sized(size));
        }
        self.plan.clone()
    }

    /// Optimises the plan for `size` and keeps it (on the pool, off any request's path).
    fn build_sized(&self, size: Vec<usize>) {
        let subs: HashMap<Symbol, TDim> = self
            .open
            .iter()
            .zip(&size)
            .map(|((_, _, sym), n)| (sym.clone(), TDim::Val(*n as i64)))
            .collect();
        let built = self.symbolic.as_ref().map(|m| {
            m.set_symbols(&subs)
                .and_then(TypedModel::into_optimized)
                .and_then(IntoRunnable::into_runnable)
        });
        let mut sized = self.sized.lock().unwrap_or_else(|e| e.into_inner());
        sized.building = false;
        sized.seen.remove(&size);
        match built {
            Some(Ok(plan)) => {
                if sized.plans.len() >= SIZED_PLANS {
                    sized.plans.remove(0);
                }
                sized.plans.push((size, plan));
            }
            _ => sized.off = true,
        }
    }

    /// The graph's inputs bound to `input`'s tensors, checked and cast.
    fn bind(&self, input: ModelData) -> Result<Vec<tract_onnx::prelude::Tensor>> {
        let tensors: Vec<(String, Tensor)> = match input {
            ModelData::Tensors(m) => m.into_iter().collect(),
            ModelData::Table(table) if self.inputs.len() == 1 => {
                // MLflow feeds `df.values`: one [rows, columns] tensor.
                let rows = table.rows();
                let cols = table.columns().len();
                let mut values = Vec::with_capacity(rows * cols);
                for c in table.columns() {
                    if c.missing().is_some() {
                        return Err(Error::invalid(format!(
                            "column '{}' has missing values, which the ONNX model cannot take",
                            c.name()
                        )));
                    }
                    values.push(as_f64(c.values(), c.name())?);
                }
                let mut data = Vec::with_capacity(rows * cols);
                for r in 0..rows {
                    data.extend(values.iter().map(|col| col[r]));
                }
                vec![(
                    self.inputs[0].name.clone(),
                    Tensor::new(vec![rows, cols], TensorData::Float64(data))?,
                )]
            }
            ModelData::Table(table) => table
                .into_columns()
                .into_iter()
                .map(|c| {
                    let (name, values, missing) = c.into_parts();
                    if missing.is_some() {
                        return Err(Error::invalid(format!(
                            "column '{name}' has missing values, which the ONNX model cannot take"
                        )));
                    }
                    let n = values.len();
                    Ok((name, Tensor::new(vec![n], values)?))
                })
                .collect::<Result<_>>()?,
        };
        let single = self.inputs.len() == 1 && tensors.len() == 1;
        let mut tensors: std::collections::BTreeMap<String, Tensor> = tensors.into_iter().collect();
        self.inputs
            .iter()
            .map(|port| {
                let t = match tensors.remove(&port.name) {
                    Some(t) => t,
                    None if single && tensors.contains_key("") => {
                        tensors.remove("").unwrap_or_else(|| unreachable!())
                    }
                    None => {
                        return Err(Error::invalid(format!(
                            "Model is missing inputs ['{}'] (the model's inputs: {})",
                            port.name,
                            self.inputs
                                .iter()
                                .map(|p| format!("'{}'", p.name))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )));
                    }
                };
                to_tract(port, t)
            })
            .collect()
    }

    fn run(self: &Arc<Self>, input: ModelData) -> Result<ModelData> {
        let small = elements(&input) <= QUICK_ELEMENTS;
        let started = std::time::Instant::now();
        let out = self.infer(input);
        if small {
            self.quick
                .store(started.elapsed() < QUICK, Ordering::Relaxed);
        }
        out
    }

    fn infer(self: &Arc<Self>, input: ModelData) -> Result<ModelData> {
        let inputs = self.bind(input)?;
        let outputs = self
            .plan_for(&inputs)
            .run(inputs.into_iter().map(IntoTValue::into_tvalue).collect())
            .map_err(|e| Error::invalid(format!("the ONNX model failed on this input: {e:#}")))?;
        let mut out = std::collections::BTreeMap::new();
        for (port, value) in self.outputs.iter().zip(outputs) {
            out.insert(port.name.clone(), from_tract(&port.name, &value)?);
        }
        Ok(ModelData::Tensors(out))
    }
}

/// The served model (shared with the pool's jobs).
struct Loaded(Arc<OnnxModel>);

#[async_trait]
impl LoadedModel for Loaded {
    fn signature(&self) -> Signature {
        self.0.signature.clone()
    }

    fn capabilities(&self) -> ModelCapabilities {
        // Rows are independent when every input's first dimension is open.
        let batchable = self
            .0
            .inputs
            .iter()
            .all(|p| p.dims.first().is_some_and(Option::is_none));
        ModelCapabilities::new(batchable, true, true)
    }

    async fn predict(&self, input: ModelData, params: Params) -> Result<ModelData> {
        // The model declares no params of its own use; unknown ones are dropped, ill-typed
        // declared ones refused.
        self.0.signature.validate_params(params)?;
        if elements(&input) <= QUICK_ELEMENTS && self.0.quick.load(Ordering::Relaxed) {
            // Handing this call to the pool and back would cost more than the call itself.
            let me = self.0.clone();
            return std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || me.run(input)))
                .unwrap_or_else(|_| {
                    Err(Error::new(
                        ErrorKind::Internal,
                        "the ONNX engine panicked on this input",
                    ))
                });
        }
        let me = self.0.clone();
        off_executor(move || me.run(input)).await
    }
}

/// Inputs of at most this many elements may run on the caller's thread (see [`QUICK`]).
const QUICK_ELEMENTS: usize = 1024;
/// A small call that took less than this marks the model quick: its next small calls run on
/// the caller's thread instead of the pool. A hand-off to the pool and back is two thread
/// wake-ups, which on a one-row request of a small model was most of the server's CPU
/// (docs/PERFORMANCE.md, run C); a small call that takes longer sends the next ones back to
/// the pool, so a slow model never holds an executor thread for long.
const QUICK: std::time::Duration = std::time::Duration::from_micros(200);

fn elements(input: &ModelData) -> usize {
    match input {
        ModelData::Tensors(m) => m.values().map(|t| t.data().len()).sum(),
        ModelData::Table(t) => t.rows().saturating_mul(t.columns().len()),
    }
}

/// The flavor's [`BlockingPool`] (one thread per core: inference is CPU-bound, so more threads
/// would only queue in the kernel instead).
fn pool() -> &'static BlockingPool {
    static POOL: std::sync::OnceLock<BlockingPool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        BlockingPool::new("cairn-onnx", cores)
    })
}

/// Runs `work` on the flavor's [`pool`] and awaits its result, so CPU-heavy work never blocks
/// an executor thread (hosts without tokio included); a panic in tract comes back as an
/// `Internal` error with its message.
async fn off_executor<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    pool().run(move |_| work()).await?
}

fn dtype_of(datum: DatumType) -> Option<DType> {
    Some(match datum {
        DatumType::Bool => DType::Bool,
        DatumType::I8 => DType::Int8,
        DatumType::I16 => DType::Int16,
        DatumType::I32 => DType::Int32,
        DatumType::I64 => DType::Int64,
        DatumType::U8 => DType::UInt8,
        DatumType::U16 => DType::UInt16,
        DatumType::U32 => DType::UInt32,
        DatumType::U64 => DType::UInt64,
        DatumType::F16 => DType::Float16,
        DatumType::F32 => DType::Float32,
        DatumType::F64 => DType::Float64,
        DatumType::String => DType::Str,
        _ => return None,
    })
}

fn as_f64(data: &TensorData, name: &str) -> Result<Vec<f64>> {
    Ok(match data {
        TensorData::Float64(v) => v.clone(),
        TensorData::Float32(v) => v.iter().map(|x| f64::from(*x)).collect(),
        TensorData::Int32(v) => v.iter().map(|x| f64::from(*x)).collect(),
        TensorData::Int64(v) => v.iter().map(|x| *x as f64).collect(),
        TensorData::Bool(v) => v.iter().map(|x| f64::from(u8::from(*x))).collect(),
        other => {
            return Err(Error::invalid(format!(
                "column '{name}' of type {:?} cannot feed a numeric model input",
                other.dtype()
            )));
        }
    })
}

/// `t` as the tract tensor `port` takes: shape checked, element type cast where MLflow casts.
fn to_tract(port: &Port, t: Tensor) -> Result<tract_onnx::prelude::Tensor> {
    let shape = t.shape().to_vec();
    let fits = shape.len() == port.dims.len()
        && shape
            .iter()
            .zip(&port.dims)
            .all(|(s, d)| d.is_none_or(|d| d == *s));
    if !fits {
        let want: Vec<String> = port
            .dims
            .iter()
            .map(|d| d.map_or("-1".into(), |d| d.to_string()))
            .collect();
        return Err(Error::invalid(format!(
            "Shape of input {shape:?} does not match expected shape ({}) of input '{}'",
            want.join(", "),
            port.name
        )));
    }
    if shape.contains(&0) {
        return Err(Error::invalid(format!("input '{}' is empty", port.name)));
    }
    let mismatch = |got: DType| {
        Error::invalid(format!(
            "input '{}' has type {got:?}, the model takes {:?}",
            port.name, port.datum
        ))
    };
    let got = t.dtype();
    let (_, data) = t.into_parts();
    fn build<T: Datum>(shape: &[usize], v: Vec<T>) -> Result<tract_onnx::prelude::Tensor> {
        tract_ndarray::ArrayD::from_shape_vec(shape, v)
            .map(tract_onnx::prelude::Tensor::from)
            .map_err(|e| Error::invalid(format!("an input does not fit its shape: {e}")))
    }
    macro_rules! cast {
        ($v:expr, $t:ty) => {
            $v.iter().map(|x| *x as $t).collect::<Vec<$t>>()
        };
    }
    match (port.datum, data) {
        (DatumType::F32, TensorData::Float32(v)) => build(&shape, v),
        (DatumType::F32, TensorData::Float64(v)) => build(&shape, cast!(v, f32)),
        (DatumType::F32, TensorData::Int32(v)) => build(&shape, cast!(v, f32)),
        (DatumType::F32, TensorData::Int64(v)) => build(&shape, cast!(v, f32)),
        (DatumType::F64, TensorData::Float64(v)) => build(&shape, v),
        (DatumType::F64, TensorData::Float32(v)) => {
            build(&shape, v.into_iter().map(f64::from).collect())
        }
        (DatumType::F64, TensorData::Int64(v)) => build(&shape, cast!(v, f64)),
        (DatumType::F64, TensorData::Int32(v)) => build(&shape, cast!(v, f64)),
        (DatumType::I64, TensorData::Int64(v)) => build(&shape, v),
        (DatumType::I64, TensorData::Int32(v)) => build(&shape, cast!(v, i64)),
        (DatumType::I32, TensorData::Int32(v)) => build(&shape, v),
        (DatumType::Bool, TensorData::Bool(v)) => build(&shape, v),
        (DatumType::String, TensorData::Str(v)) => build(&shape, v),
        _ => Err(mismatch(got)),
    }
}

/// A tract output as a Cairn tensor.
fn from_tract(name: &str, t: &tract_onnx::prelude::Tensor) -> Result<Tensor> {
    let shape = t.shape().to_vec();
    let err = |e: tract_onnx::prelude::TractError| Error::internal(format!("output '{name}': {e}"));
    let data = match t.datum_type() {
        DatumType::F32 => TensorData::Float32(
            t.to_plain_array_view::<f32>()
                .map_err(err)?
                .iter()
                .cloned()
                .collect(),
        ),
        DatumType::F64 => TensorData::Float64(
            t.to_plain_array_view::<f64>()
                .map_err(err)?
                .iter()
                .cloned()
                .collect(),
        ),
        DatumType::I64 => TensorData::Int64(
            t.to_plain_array_view::<i64>()
                .map_err(err)?
                .iter()
                .cloned()
                .collect(),
        ),
        DatumType::I32 => TensorData::Int32(
            t.to_plain_array_view::<i32>()
                .map_err(err)?
                .iter()
                .cloned()
                .collect(),
        ),
        DatumType::Bool => TensorData::Bool(
            t.to_plain_array_view::<bool>()
                .map_err(err)?
                .iter()
                .cloned()
                .collect(),
        ),
        DatumType::String => TensorData::Str(
            t.to_plain_array_view::<String>()
                .map_err(err)?
                .iter()
                .cloned()
                .collect(),
        ),
        other => {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "output '{name}' has element type {other:?}, which Cairn cannot return yet"
                ),
            ));
        }
    };
    Tensor::new(shape, data)
}

#[cfg(feature = "fixtures")]
pub mod fixtures;
