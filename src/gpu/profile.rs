//! Device time per kernel, for finding where a run's time goes on any adapter:
//! `NETLENS_PROFILE=1` makes each launch its own compute pass, timed by timestamps where
//! a GPU has them (`TIMESTAMP_QUERY`; lavapipe's end-of-pass stamp comes before its
//! worker threads finish, so CPU adapters do not), else on the host (one submission and one wait
//! per launch: a CPU driver's time, or a GPU's plus its launch latency;
//! `NETLENS_PROFILE=host` asks for that clock everywhere). Totals per
//! kernel are printed to stderr when the context closes (`Context::profile_report`).
//! Profiling serialises the work, so it costs speed; off, it costs nothing.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use super::kernels::Kernel;

/// Whether `NETLENS_PROFILE` asks for kernel times.
pub fn requested() -> bool {
    std::env::var("NETLENS_PROFILE").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Whether it asks for the host clock even where the device has timestamps
/// (`NETLENS_PROFILE=host`).
pub fn host_clock() -> bool {
    std::env::var("NETLENS_PROFILE").is_ok_and(|v| v == "host" || v == "trace")
}

/// Whether it asks for a line per launch on stderr as well (`NETLENS_PROFILE=trace`:
/// the host clock, each launch's kernel, workgroup counts and time).
pub fn trace() -> bool {
    std::env::var("NETLENS_PROFILE").is_ok_and(|v| v == "trace")
}

/// One kernel's launches and their summed time.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct KernelTime {
    pub launches: u64,
    pub seconds: f64,
}

/// A launch ready to encode: its pipeline, bind group and workgroup counts.
pub(crate) struct Ready<'a> {
    pub kernel: Kernel,
    pub pipeline: &'a wgpu::ComputePipeline,
    pub bind_group: wgpu::BindGroup,
    pub groups: [u32; 3],
}

pub(crate) struct Profiler {
    /// Nanoseconds per timestamp tick, where the device writes timestamps.
    period: Option<f32>,
    times: Mutex<HashMap<String, KernelTime>>,
    /// How the times were taken, for the report.
    pub clock: &'static str,
    /// Whether each host-timed launch is printed as it ends.
    trace: bool,
}

/// Queries in one set (wgpu's limit), two per launch.
const MAX_QUERIES: usize = wgpu::QUERY_SET_MAX_QUERIES as usize;

impl Profiler {
    fn new(period: Option<f32>) -> Self {
        Profiler {
            period,
            times: Mutex::new(HashMap::new()),
            clock: if period.is_some() {
                "device timestamps"
            } else {
                "host clock, one launch a submission"
            },
            trace: period.is_none() && trace(),
        }
    }

    /// A profiler for `device`: its timestamps where it opened with them and is not a CPU
    /// adapter (lavapipe writes a pass's end timestamp before its workers finish), and
    /// `NETLENS_PROFILE` is not `host`; else the host clock.
    pub fn for_device(device: &wgpu::Device, queue: &wgpu::Queue) -> Self {
        let stamps = device.features().contains(wgpu::Features::TIMESTAMP_QUERY)
            && device.adapter_info().device_type != wgpu::DeviceType::Cpu
            && !host_clock();
        Profiler::new(stamps.then(|| queue.get_timestamp_period()))
    }

    fn add(&self, kernel: Kernel, seconds: f64) {
        let mut t = self.times.lock().unwrap();
        let e = t.entry(format!("{kernel:?}")).or_default();
        e.launches += 1;
        e.seconds += seconds;
    }

    /// Runs `launches` one pass each and adds their times.
    pub fn run(&self, device: &wgpu::Device, queue: &wgpu::Queue, label: &str, launches: &[Ready]) {
        match self.period {
            Some(period) => {
                for part in launches.chunks(MAX_QUERIES / 2) {
                    self.run_timestamped(device, queue, label, part, period);
                }
            }
            None => {
                for l in launches {
                    let mut enc = device.create_command_encoder(&Default::default());
                    encode(&mut enc, label, l, None);
                    let t = Instant::now();
                    queue.submit([enc.finish()]);
                    let _ = device.poll(wgpu::PollType::wait_indefinitely());
                    let seconds = t.elapsed().as_secs_f64();
                    if self.trace {
                        let [x, y, z] = l.groups;
                        eprintln!(
                            "netlens trace: {label}: {:?} [{x}, {y}, {z}] {:.3} ms",
                            l.kernel,
                            seconds * 1e3
                        );
                    }
                    self.add(l.kernel, seconds);
                }
            }
        }
    }

    fn run_timestamped(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        label: &str,
        launches: &[Ready],
        period: f32,
    ) {
        let count = 2 * launches.len() as u32;
        let set = device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("netlens profile"),
            ty: wgpu::QueryType::Timestamp,
            count,
        });
        let bytes = count as u64 * 8;
        let buffer = |usage| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("netlens profile"),
                size: bytes,
                usage,
                mapped_at_creation: false,
            })
        };
        let resolved = buffer(wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC);
        let staging = buffer(wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST);
        let mut enc = device.create_command_encoder(&Default::default());
        for (i, l) in launches.iter().enumerate() {
            encode(&mut enc, label, l, Some((&set, 2 * i as u32)));
        }
        enc.resolve_query_set(&set, 0..count, &resolved, 0);
        enc.copy_buffer_to_buffer(&resolved, 0, &staging, 0, Some(bytes));
        queue.submit([enc.finish()]);
        staging.map_async(wgpu::MapMode::Read, .., |_| {});
        let _ = device.poll(wgpu::PollType::wait_indefinitely());
        let ticks: Vec<u64> = match staging.get_mapped_range(..) {
            Ok(view) => bytemuck::pod_collect_to_vec(&view),
            Err(e) => {
                log::warn!("profile: timestamps of {label} not read: {e}");
                return;
            }
        };
        for (l, t) in launches.iter().zip(ticks.chunks_exact(2)) {
            let ns = t[1].saturating_sub(t[0]) as f64 * period as f64;
            self.add(l.kernel, ns * 1e-9);
        }
    }

    /// Kernel times so far, the longest first.
    pub fn times(&self) -> Vec<(String, KernelTime)> {
        let mut v: Vec<_> = self.times.lock().unwrap().clone().into_iter().collect();
        v.sort_by(|a, b| b.1.seconds.total_cmp(&a.1.seconds).then(a.0.cmp(&b.0)));
        v
    }

    /// The times as a table: kernel, launches, total, mean, share.
    pub fn report(&self, adapter: &str) -> String {
        let times = self.times();
        let total: f64 = times.iter().map(|t| t.1.seconds).sum();
        let mut s = format!(
            "netlens profile: {adapter}, {} ({:.1} ms in all)\n{:<40} {:>9} {:>11} {:>11} {:>7}\n",
            self.clock,
            total * 1e3,
            "kernel",
            "launches",
            "total ms",
            "mean us",
            "share"
        );
        for (name, t) in &times {
            s += &format!(
                "{name:<40} {:>9} {:>11.2} {:>11.1} {:>6.1}%\n",
                t.launches,
                t.seconds * 1e3,
                t.seconds * 1e6 / t.launches.max(1) as f64,
                100.0 * t.seconds / total.max(f64::MIN_POSITIVE)
            );
        }
        s
    }
}

fn encode(
    enc: &mut wgpu::CommandEncoder,
    label: &str,
    l: &Ready,
    timestamps: Option<(&wgpu::QuerySet, u32)>,
) {
    let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some(label),
        timestamp_writes: timestamps.map(|(set, i)| wgpu::ComputePassTimestampWrites {
            query_set: set,
            beginning_of_pass_write_index: Some(i),
            end_of_pass_write_index: Some(i + 1),
        }),
    });
    pass.set_pipeline(l.pipeline);
    pass.set_bind_group(0, &l.bind_group, &[]);
    pass.dispatch_workgroups(l.groups[0], l.groups[1], l.groups[2]);
}
