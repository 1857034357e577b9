"""Cairn's python_function worker, protocol version 3 (shipped inside the cairn binary).

Started as `python -c <this file> <model dir>` with CAIRN_PYFUNC_SOCKET naming a Unix socket
that Cairn listens on. It connects, loads the model once with `mlflow.pyfunc.load_model`, says
"ready", then answers predict calls one at a time until the socket closes.

Frames, both ways: u32 LE header length, the header (UTF-8 JSON), u64 LE body length, the
body (an Arrow IPC stream, or nothing). Data crosses as Arrow, never as per-row JSON:
  * a table is one record batch, one column per column (nulls are missing values);
  * tensors are one record batch of one row, one list column per tensor holding its elements
    row-major; the header's "tensors" gives each one's name and shape;
  * a column (or a tensor's list column) whose field metadata has cairn.json=1 holds JSON texts:
    each becomes the Python value json.loads makes of it (a list, a dict, ...), a null in a
    table NaN (a record without the key, as pandas reads records). As MLflow's scoring server
    does, a table's columns typed Array/Object/Map/Any then go through MLflow's
    cast_df_types_according_to_schema, and tensors holding JSON values are rebuilt into the
    request's `inputs` value and read by MLflow's parse_tf_serving_input (the tensors
    "\\0inputs" / "\\0instances" are a column-signature model's whole `inputs` / `instances`);
    MLflow's refusals there answer as its scoring server answers them.
Header fields: "op" (ready | predict | result | error), "protocol", "id", "input"/"output"
(table | tensors), "tensors", "params"; an error has "error_code" and "message" (MLflow's).
Anything the model prints goes to stderr, never into the protocol.

CAIRN_PYFUNC_MEMORY_LIMIT (bytes), when set, becomes this process's RLIMIT_DATA before anything
is imported: an allocation past it raises MemoryError, which is answered as an error frame with
"memory": true (Cairn then stops this worker and starts another).
"""

import json
import os
import socket
import struct
import sys
import traceback

PROTOCOL = 3
JSON_KEY = b"cairn.json"
RAW_INPUTS = {"\0inputs": "inputs", "\0instances": "instances"}


def read_exact(stream, n):
    data = stream.read(n)
    if data is None or len(data) < n:
        raise EOFError
    return data


def read_frame(stream):
    (hlen,) = struct.unpack("<I", read_exact(stream, 4))
    header = json.loads(read_exact(stream, hlen))
    (blen,) = struct.unpack("<Q", read_exact(stream, 8))
    body = read_exact(stream, blen) if blen else b""
    return header, body


def write_frame(stream, header, body=b""):
    h = json.dumps(header).encode()
    stream.write(struct.pack("<I", len(h)) + h + struct.pack("<Q", len(body)))
    if body:
        stream.write(body)
    stream.flush()


def ipc(batch):
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


class ParseError(Exception):
    """MLflow's refusal of the request while reading it (before predict): answered as its
    scoring server answers it, without predict's wording."""

    def __init__(self, error):
        super().__init__(str(error))
        self.error = error


def _is_json(field):
    return (field.metadata or {}).get(JSON_KEY) == b"1"


def _nest(flat, shape):
    """The flat list `flat` as nested lists of `shape` (row-major)."""
    if not shape:
        return flat[0]
    if len(shape) == 1:
        return list(flat)
    stride = len(flat) // shape[0] if shape[0] else 0
    return [_nest(flat[i * stride:(i + 1) * stride], shape[1:]) for i in range(shape[0])]


def _json_columns(df, table, schema):
    """The table's JSON columns as the Python values, then MLflow's casts of the ones its
    signature types Array/Object/Map/Any."""
    import pandas as pd

    names = []
    for field, column in zip(table.schema, table.columns):
        if _is_json(field):
            values = [float("nan") if t is None else json.loads(t) for t in column.to_pylist()]
            df[field.name] = pd.Series(values, index=df.index, name=field.name)
            names.append(field.name)
    if not names or schema is None or schema.is_tensor_spec() or not schema.has_input_names():
        return df
    from mlflow.exceptions import MlflowException
    from mlflow.types.schema import AnyType, Array, Map, Object, Schema
    from mlflow.utils.proto_json_utils import cast_df_types_according_to_schema

    specs = [s for s in schema.inputs
             if s.name in names and isinstance(s.type, (Array, Object, Map, AnyType))]
    if not specs:
        return df
    try:
        cast = cast_df_types_according_to_schema(df[[s.name for s in specs]].copy(), Schema(specs))
    except MlflowException as e:
        raise ParseError(e)
    for spec in specs:
        df[spec.name] = cast[spec.name]
    return df


def decode_input(header, body, schema):
    import numpy as np
    import pyarrow as pa

    table = pa.ipc.open_stream(body).read_all()
    if header["input"] == "table":
        return _json_columns(table.to_pandas(), table, schema)
    specs = header["tensors"]
    if any(spec["name"] in RAW_INPUTS for spec in specs) or any(_is_json(f) for f in table.schema):
        # MLflow's own reading of the `inputs` (or `instances`) value.
        from mlflow.exceptions import MlflowException
        from mlflow.utils.proto_json_utils import parse_tf_serving_input

        values = {}
        for spec, field, column in zip(specs, table.schema, table.columns):
            flat = column[0].values.to_pylist()
            if _is_json(field):
                flat = [json.loads(t) for t in flat]
            values[spec["name"]] = _nest(flat, spec["shape"])
        (name,) = values if len(values) == 1 else [None]
        if name in RAW_INPUTS:
            request = {RAW_INPUTS[name]: values[name]}
        else:
            request = {"inputs": values[""] if list(values) == [""] else values}
        try:
            return parse_tf_serving_input(request, schema=schema)
        except MlflowException as e:
            raise ParseError(e)
    out = {}
    for spec, column in zip(specs, table.columns):
        values = column[0].values
        if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
            arr = np.array(values.to_pylist(), dtype=object)
        elif pa.types.is_binary(values.type) or pa.types.is_large_binary(values.type):
            arr = np.array(values.to_pylist(), dtype=object)
        else:
            arr = values.to_numpy(zero_copy_only=False)
        out[spec["name"]] = arr.reshape(spec["shape"])
    if list(out) == [""]:
        return out[""]
    return out


class Unsupported(Exception):
    pass


def _iso(v):
    """A date, time or timestamp as MLflow's NumpyEncoder writes it (isoformat); anything else
    as it is."""
    import datetime

    import pandas as pd

    if isinstance(v, (pd.Timestamp, datetime.date, datetime.datetime, datetime.time)):
        return v.isoformat()
    return v


def _flat_array(arr):
    """A flat numpy array as an Arrow array of a type Cairn reads."""
    import numpy as np
    import pyarrow as pa

    if arr.dtype == np.float16:
        # MLflow writes float(x) of each half float: exactly the float32's value.
        arr = arr.astype(np.float32)
    if arr.dtype.kind in "biuf" and arr.dtype.itemsize <= 8:
        return pa.array(arr)
    if arr.dtype.kind == "M":
        # What MLflow writes is what .tolist() gives: ints for datetime64[ns], datetimes
        # (written with isoformat) for coarser units.
        arr = np.array(arr.tolist(), dtype=object)
    if arr.dtype.kind in "OUS":
        values = [_iso(v) for v in arr.tolist()]
        if all(isinstance(v, str) for v in values):
            return pa.array(values, type=pa.string())
        if all(isinstance(v, (bytes, bytearray)) for v in values):
            return pa.array(values, type=pa.binary())
        if all(isinstance(v, bool) for v in values):
            return pa.array(values, type=pa.bool_())
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            return pa.array(values, type=pa.int64())
        if all(isinstance(v, float) for v in values):
            return pa.array(values, type=pa.float64())
    raise Unsupported(f"an array of dtype {arr.dtype}")


def _of_kind(v, kind):
    """Whether the list element `v` is written by json.dump as an element of a numpy array of
    dtype kind `kind` is."""
    import numpy as np

    if isinstance(v, (bool, np.bool_)):
        return kind == "b"
    if isinstance(v, (int, np.integer)):
        return kind in "iu"
    if isinstance(v, (float, np.floating)):
        return kind == "f"
    return isinstance(v, str) and kind == "U"


def encode_columnar(out):
    """The header fields and Arrow body of a prediction, in the forms MLflow's scoring server
    renders: a DataFrame (or Series, as a one-column DataFrame) as records, an ndarray (or
    list, or scalar) as a nested list, a dict as an object of them. Raises for anything these
    forms would not carry exactly (encode_output then renders it with MLflow's code)."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    if isinstance(out, pd.Series):
        out = pd.DataFrame(out)
    if isinstance(out, pd.DataFrame):
        if not all(isinstance(c, str) or type(c) is int for c in out.columns):
            # json.dump writes an int key as its digits (a Series' 0), but True as "true",
            # 1.5 as "1.5", None as "null", and fails on numpy ints: MLflow's code decides.
            raise Unsupported("a DataFrame with column names that are not strings")
        names = [str(c) for c in out.columns]
        if len(set(names)) != len(names):
            raise Unsupported("a DataFrame with repeated column names")
        arrays = []
        for name in out.columns:
            col = out[name]
            if col.dtype.kind == "f" and isinstance(col.dtype, np.dtype):
                # NaN stays NaN (MLflow writes it as NaN, not null).
                arrays.append(_flat_array(col.to_numpy()))
                continue
            if col.dtype.kind == "M":
                # to_dict gives Timestamps (NaT too), which MLflow writes with isoformat.
                col = col.astype(object)
            mask = col.isna().to_numpy()
            if mask.any() and not all(v is None for v in col.to_numpy(dtype=object)[mask]):
                # A missing value that is not None (NaN in a pandas string column, pd.NA):
                # MLflow writes what to_dict gives (NaN), which a null cannot say.
                raise Unsupported(f"a DataFrame column '{name}' with missing values")
            if col.dtype.kind in "biu":
                values = col.to_numpy()
            else:
                values = col.to_numpy(dtype=object)
                values = np.array([v if not m else None for v, m in zip(values, mask)], dtype=object)
            try:
                if col.dtype.kind in "biu":
                    arrays.append(pa.array(values, mask=mask if mask.any() else None))
                else:
                    present = values[~mask]
                    kind = _flat_array(present).type if len(present) else pa.string()
                    arrays.append(pa.array([_iso(v) for v in values.tolist()], type=kind))
            except Unsupported:
                raise Unsupported(f"a DataFrame column '{name}' of dtype {col.dtype}")
        batch = pa.RecordBatch.from_arrays(arrays, names=names)
        return {"output": "table"}, ipc(batch)
    if isinstance(out, dict):
        items = list(out.items())
        if not all(isinstance(k, str) and k and not k.startswith("\0") for k in out):
            raise Unsupported("a dict whose keys are not non-empty strings")
        if list(out) != sorted(out):
            # Named tensors come back in name order; MLflow keeps the dict's own.
            raise Unsupported("a dict whose keys are not in name order")
    else:
        items = [("", out)]
    specs, arrays = [], []
    for name, value in items:
        arr = np.asarray(value) if not isinstance(value, np.ndarray) else value
        if isinstance(value, (list, tuple)):
            # json.dump writes each element of a list as its own type (1 and 2.5, true and 1,
            # 1 and "a"), where np.asarray makes them one: only a list of one kind is a tensor.
            leaves = np.asarray(value, dtype=object).reshape(-1).tolist()
            if not all(_of_kind(v, arr.dtype.kind) for v in leaves):
                raise Unsupported("a list mixing element types")
        flat = _flat_array(arr.reshape(-1))
        specs.append({"name": name, "shape": list(arr.shape)})
        arrays.append(pa.ListArray.from_arrays(pa.array([0, len(flat)], type=pa.int32()), flat))
    batch = pa.RecordBatch.from_arrays(arrays, names=[s["name"] or "_" for s in specs])
    return {"output": "tensors", "tensors": specs}, ipc(batch)


def encode_rendered(out):
    """The prediction as MLflow's scoring server writes it (`predictions_to_json`:
    `_get_jsonable_obj(out, pandas_orient="records")` written by `json.dump` with
    `NumpyEncoder`), as one string column: a list one text per element, anything else one
    text. Cairn writes the list back as "[" + the texts joined by ", " + "]", which is what
    json.dump writes for it."""
    import pyarrow as pa
    from mlflow.utils.proto_json_utils import NumpyEncoder, _get_jsonable_obj

    value = _get_jsonable_obj(out, pandas_orient="records")

    def text(v):
        # json.dump's own path (iterencode, not the one-shot C encoder of json.dumps).
        return "".join(NumpyEncoder().iterencode(v))

    rows = isinstance(value, (list, tuple))
    texts = [text(v) for v in value] if rows else [text(value)]
    batch = pa.RecordBatch.from_arrays([pa.array(texts, type=pa.string())], names=["json"])
    return {"output": "json", "rows": rows}, ipc(batch)


def encode_output(out):
    """A prediction in a columnar form when one carries it exactly, else rendered by MLflow's
    own code."""
    try:
        return encode_columnar(out)
    except MemoryError:
        raise
    except Exception:
        return encode_rendered(out)


def mlflow_error(e, data):
    """The error body MLflow's scoring server answers when predict raised `e` (as its
    `invocations` words it, the stack trace of a non-MLflow exception included), called while
    `e` is being handled: (error code, message, body text)."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import BAD_REQUEST

    if isinstance(e, MlflowException):
        e.message = f"Failed to predict data '{data}'. \nError: {e.message}"
        err = e
    else:
        err = MlflowException(
            message=(
                "Encountered an unexpected error while evaluating the model. Verify that the "
                "serialized input Dataframe is compatible with the model for inference."
            ),
            error_code=BAD_REQUEST,
            stack_trace=traceback.format_exc(),
        )
    body = err.serialize_as_json()
    return json.loads(body)["error_code"], err.message, body


def set_memory_limit():
    limit = os.environ.get("CAIRN_PYFUNC_MEMORY_LIMIT")
    if not limit:
        return
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    soft = int(limit) if hard == resource.RLIM_INFINITY else min(int(limit), hard)
    resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))


def memory_error(e):
    limit = os.environ.get("CAIRN_PYFUNC_MEMORY_LIMIT")
    return {"op": "error", "memory": True, "error_code": "BAD_REQUEST",
            "message": f"MemoryError{': ' + str(e) if str(e) else ''} (limit {limit} bytes)"}


def main():
    set_memory_limit()
    model_dir = sys.argv[1]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(os.environ["CAIRN_PYFUNC_SOCKET"])
    rfile, wfile = sock.makefile("rb"), sock.makefile("wb")
    sys.stdout = sys.stderr
    missing = []
    for module in ("mlflow", "pyarrow", "pandas", "numpy"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        write_frame(wfile, {"op": "error", "error_code": "INVALID_PARAMETER_VALUE", "message": (
            f"the Python interpreter {sys.executable} cannot import {', '.join(missing)}: "
            "install them there (pip install mlflow), or choose another interpreter "
            "(--python or PYTHON), or use --env-manager virtualenv|uv")})
        return
    import inspect

    import mlflow.pyfunc

    try:
        model = mlflow.pyfunc.load_model(model_dir)
    except MemoryError as e:
        write_frame(wfile, memory_error(e))
        return
    except ImportError as e:
        write_frame(wfile, {"op": "error", "error_code": "INVALID_PARAMETER_VALUE", "message": (
            f"the model needs the Python module '{e.name}', which {sys.executable} cannot "
            f"import ({e}): install the model's requirements there (requirements.txt next to "
            "MLmodel; --env-manager virtualenv|uv builds an environment from it)")})
        return
    except Exception as e:
        write_frame(wfile, {"op": "error", "error_code": "INVALID_PARAMETER_VALUE",
                            "message": f"mlflow.pyfunc.load_model failed: {type(e).__name__}: {e}"})
        return
    takes_params = "params" in inspect.signature(model.predict).parameters
    input_schema = model.metadata.get_input_schema()
    write_frame(wfile, {"op": "ready", "protocol": PROTOCOL, "pid": os.getpid(),
                        "python": sys.version.split()[0], "mlflow": mlflow.__version__})
    while True:
        try:
            header, body = read_frame(rfile)
        except EOFError:
            return
        if header.get("op") != "predict":
            write_frame(wfile, {"op": "error", "id": header.get("id"), "error_code": "INTERNAL_ERROR",
                                "message": f"unknown operation {header.get('op')!r}"})
            continue
        reply = {"id": header.get("id")}
        try:
            data = decode_input(header, body, input_schema)
        except ParseError as e:
            error_body = e.error.serialize_as_json()
            write_frame(wfile, {**reply, "op": "error", "error_code": json.loads(error_body)["error_code"],
                                "message": e.error.message, "body": error_body})
            continue
        except Exception as e:
            write_frame(wfile, {**reply, "op": "error", "error_code": "BAD_REQUEST",
                                "message": f"cannot read the batch: {e}"})
            continue
        try:
            if takes_params:
                out = model.predict(data, params=header.get("params") or None)
            else:
                out = model.predict(data)
        except MemoryError as e:
            del data
            write_frame(wfile, {**reply, **memory_error(e)})
            continue
        except Exception as e:
            code, message, error_body = mlflow_error(e, data)
            traceback.print_exc()
            write_frame(wfile, {**reply, "op": "error", "error_code": code, "message": message,
                                "body": error_body})
            continue
        try:
            fields, out_body = encode_output(out)
        except MemoryError as e:
            del out
            write_frame(wfile, {**reply, **memory_error(e)})
            continue
        except Exception as e:
            write_frame(wfile, {**reply, "op": "error", "error_code": "INTERNAL_ERROR", "message": (
                f"Cairn cannot carry this model's prediction of type {type(out).__name__}: {e}")})
            continue
        write_frame(wfile, {**reply, "op": "result", **fields}, out_body)


if __name__ == "__main__":
    main()
