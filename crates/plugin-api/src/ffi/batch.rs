//! The compact request of [`TrackingMethod::LogBatch`](super::TrackingMethod::LogBatch): a
//! length-prefixed binary form of `(run_id, [Metric], [Param], [RunTag])`.
//!
//! `log_batch` is the hottest write and its request the largest (≈80 bytes of JSON per
//! metric); encoding and decoding it as JSON cost more than the rest of the call. This form
//! is a straight copy of the fields, so both ends are a few memory copies.
//!
//! Layout (all integers little-endian; a string is a `u32` byte length and UTF-8 bytes):
//!
//! ```text
//! MAGIC (1 byte) VERSION (1 byte) run_id
//! u32 metric count, then per metric:
//!     key  value:f64  timestamp:i64  step:i64  flags:u8
//!     dataset_name? dataset_digest? model_id? run_id?   (present where flags bit 0..3 set)
//! u32 param count, then per param: key value
//! u32 tag count, then per tag: key value
//! ```
//!
//! A request whose first byte is `[` is the ordinary JSON tuple, which a library still
//! accepts; the host sends this form.

use crate::entities::{Metric, Param, RunTag};
use crate::{Error, Result};

/// The first byte of a binary `log_batch` request (never `[`, which starts the JSON form).
const MAGIC: u8 = 0xCB;
/// The version of the layout above.
const VERSION: u8 = 1;

/// The arguments of `log_batch` after `&self`.
pub(super) type LogBatch = (String, Vec<Metric>, Vec<Param>, Vec<RunTag>);

/// Encodes a `log_batch` request.
pub(super) fn encode(
    run_id: &str,
    metrics: &[Metric],
    params: &[Param],
    tags: &[RunTag],
) -> Vec<u8> {
    let strings =
        |kv: &[(&str, &str)]| kv.iter().map(|(k, v)| 8 + k.len() + v.len()).sum::<usize>();
    let metric_bytes: usize = metrics
        .iter()
        .map(|m| {
            4 + m.key.len()
                + 25
                + [&m.dataset_name, &m.dataset_digest, &m.model_id, &m.run_id]
                    .iter()
                    .map(|o| o.as_ref().map_or(0, |s| 4 + s.len()))
                    .sum::<usize>()
        })
        .sum();
    let kv: Vec<(&str, &str)> = params
        .iter()
        .map(|p| (p.key.as_str(), p.value.as_str()))
        .chain(tags.iter().map(|t| (t.key.as_str(), t.value.as_str())))
        .collect();
    let mut out = Vec::with_capacity(2 + 4 + run_id.len() + 12 + metric_bytes + strings(&kv));
    out.push(MAGIC);
    out.push(VERSION);
    put_str(&mut out, run_id);
    put_len(&mut out, metrics.len());
    for m in metrics {
        put_str(&mut out, &m.key);
        out.extend_from_slice(&m.value.to_bits().to_le_bytes());
        out.extend_from_slice(&m.timestamp.to_le_bytes());
        out.extend_from_slice(&m.step.to_le_bytes());
        let optional = [&m.dataset_name, &m.dataset_digest, &m.model_id, &m.run_id];
        let flags = optional
            .iter()
            .enumerate()
            .fold(0u8, |f, (i, o)| f | (u8::from(o.is_some()) << i));
        out.push(flags);
        for s in optional.into_iter().flatten() {
            put_str(&mut out, s);
        }
    }
    for list in [&kv[..params.len()], &kv[params.len()..]] {
        put_len(&mut out, list.len());
        for (k, v) in list {
            put_str(&mut out, k);
            put_str(&mut out, v);
        }
    }
    out
}

/// Whether `request` is in this binary form (rather than the JSON tuple).
pub(super) fn is_binary(request: &[u8]) -> bool {
    request.first() == Some(&MAGIC)
}

/// Decodes a request made by [`encode`].
pub(super) fn decode(request: &[u8]) -> Result<LogBatch> {
    let mut r = Reader(request);
    if r.bytes(1)? != [MAGIC] {
        return Err(malformed("it is not a binary log_batch request"));
    }
    let version = r.bytes(1)?[0];
    if version != VERSION {
        return Err(malformed(&format!(
            "its layout version is {version}, this library reads version {VERSION}"
        )));
    }
    let run_id = r.string()?;
    let count = r.count(29)?;
    let mut metrics = Vec::with_capacity(count);
    for _ in 0..count {
        let key = r.string()?;
        let value = f64::from_bits(r.u64()?);
        let timestamp = r.u64()? as i64;
        let step = r.u64()? as i64;
        let flags = r.bytes(1)?[0];
        if flags > 0b1111 {
            return Err(malformed("a metric has unknown flags"));
        }
        let mut optional = [None, None, None, None];
        for (i, slot) in optional.iter_mut().enumerate() {
            if flags & (1 << i) != 0 {
                *slot = Some(r.string()?);
            }
        }
        let [dataset_name, dataset_digest, model_id, metric_run_id] = optional;
        metrics.push(Metric {
            key,
            value,
            timestamp,
            step,
            dataset_name,
            dataset_digest,
            model_id,
            run_id: metric_run_id,
        });
    }
    let count = r.count(8)?;
    let mut params = Vec::with_capacity(count);
    for _ in 0..count {
        params.push(Param {
            key: r.string()?,
            value: r.string()?,
        });
    }
    let count = r.count(8)?;
    let mut tags = Vec::with_capacity(count);
    for _ in 0..count {
        tags.push(RunTag {
            key: r.string()?,
            value: r.string()?,
        });
    }
    if !r.0.is_empty() {
        return Err(malformed("it has trailing bytes"));
    }
    Ok((run_id, metrics, params, tags))
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    // A request over 4 GiB cannot be built (the REST layer caps bodies far below).
    let len = u32::try_from(len).expect("a log_batch field longer than 4 GiB");
    out.extend_from_slice(&len.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_len(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

fn malformed(why: &str) -> Error {
    Error::internal(format!(
        "the plugin could not decode the log_batch request from the host (is the host's \
         cairn-plugin-api compatible with {}?): {why}",
        crate::API_VERSION
    ))
}

/// A cursor over the request.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(malformed("it ends early"));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32> {
        let b = self.bytes(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.bytes(8)?);
        Ok(u64::from_le_bytes(a))
    }

    /// A count of items of at least `min_size` bytes each, checked against what is left so a
    /// corrupt count cannot make the decoder reserve gigabytes.
    fn count(&mut self, min_size: usize) -> Result<usize> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_size) > self.0.len() {
            return Err(malformed("a count exceeds the request's length"));
        }
        Ok(n)
    }

    fn string(&mut self) -> Result<String> {
        let len = self.u32()? as usize;
        let bytes = self.bytes(len)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| malformed("a string is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn metric() -> impl Strategy<Value = Metric> {
        (
            ".{0,12}",
            any::<f64>(),
            any::<i64>(),
            any::<i64>(),
            proptest::option::of(".{0,6}"),
            proptest::option::of(".{0,6}"),
            proptest::option::of(".{0,6}"),
            proptest::option::of(".{0,6}"),
        )
            .prop_map(|(key, value, timestamp, step, dn, dd, mid, rid)| Metric {
                key,
                value,
                timestamp,
                step,
                dataset_name: dn,
                dataset_digest: dd,
                model_id: mid,
                run_id: rid,
            })
    }

    /// Compares metrics bit for bit (NaN included).
    fn same(a: &[Metric], b: &[Metric]) -> bool {
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| {
                x.value.to_bits() == y.value.to_bits()
                    && Metric {
                        value: 0.0,
                        ..x.clone()
                    } == Metric {
                        value: 0.0,
                        ..y.clone()
                    }
            })
    }

    proptest! {
        #[test]
        fn requests_round_trip(
            run_id in ".{0,40}",
            metrics in proptest::collection::vec(metric(), 0..20),
            params in proptest::collection::vec((".{0,8}", ".{0,8}"), 0..5),
            tags in proptest::collection::vec((".{0,8}", ".{0,8}"), 0..5),
        ) {
            let params: Vec<Param> = params.into_iter().map(|(key, value)| Param { key, value }).collect();
            let tags: Vec<RunTag> = tags.into_iter().map(|(key, value)| RunTag { key, value }).collect();
            let bytes = encode(&run_id, &metrics, &params, &tags);
            prop_assert!(is_binary(&bytes));
            let (r, m, p, t) = decode(&bytes).unwrap();
            prop_assert_eq!(r, run_id);
            prop_assert!(same(&m, &metrics));
            prop_assert_eq!(p, params);
            prop_assert_eq!(t, tags);
            // Every strict prefix is refused, never mis-read.
            for cut in 0..bytes.len() {
                prop_assert!(decode(&bytes[..cut]).is_err());
            }
        }
    }

    #[test]
    fn corrupt_requests_are_refused() {
        let m = vec![Metric::new("loss", 0.5, 1, 2)];
        let good = encode("run", &m, &[], &[]);
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(decode(&trailing).is_err());
        let mut version = good.clone();
        version[1] = 9;
        let e = decode(&version).unwrap_err();
        assert!(e.to_string().contains("layout version is 9"), "{e}");
        let mut huge = good.clone();
        // The metric count follows the run id (4 + 3 bytes after the header).
        huge[9..13].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&huge).is_err());
        assert!(!is_binary(br#"["run",[],[],[]]"#));
    }
}
