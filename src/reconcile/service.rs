//! The Service reconciler: this node's Services as supervised processes.
//! `render` and `plan` are pure; `reconcile` does the I/O through the supervisor.

use std::collections::BTreeMap;

use super::context::{Context, Outcome, ReconcileError};
use crate::config::{expand_home, resolve_secret};
use crate::controller::status::{ConditionType, Observed};
use crate::event::Event;
use crate::identity::NodeEnv;
use crate::manifest::Object;
use crate::manifest::kinds::{EnvValue, NodeSpec, ServiceSpec};
use crate::supervisor::{Phase, Probe, ProcessSpec, UnitStatus};
use crate::template;

/// What must happen to one Service on this node. A start carries the process
/// it starts, so the executor runs exactly what was planned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ServiceAction {
    /// Running as declared, or declared elsewhere and not running here.
    Nothing,
    Start(ProcessSpec),
    /// Running with another spec: stop it, start the declared one.
    Replace(ProcessSpec),
    Stop,
}

/// Compares the declared process (if this node should run one) with the observed
/// one. The supervisor restarts crashed processes itself, so a known fingerprint
/// is left alone whatever its phase.
pub(crate) fn plan(desired: Option<ProcessSpec>, observed: Option<&UnitStatus>) -> ServiceAction {
    match (desired, observed) {
        (None, None) => ServiceAction::Nothing,
        (None, Some(_)) => ServiceAction::Stop,
        (Some(desired), None) => ServiceAction::Start(desired),
        (Some(desired), Some(observed)) if desired.fingerprint() != observed.fingerprint => {
            ServiceAction::Replace(desired)
        }
        (Some(_), Some(_)) => ServiceAction::Nothing,
    }
}

/// The process `service` declares for `node`: placeholders substituted, secrets
/// resolved, durations converted. Fails only on a secret that cannot be read.
pub(crate) fn render(
    service: &Object<ServiceSpec>,
    node: &Object<NodeSpec>,
    env: &NodeEnv,
) -> Result<ProcessSpec, ReconcileError> {
    let spec = &service.spec;
    let values = [("node.name", node.name()), ("node.address", node.spec.address.value.as_str())];
    let command = spec.command.iter().map(|arg| template::render(&arg.value, &values)).collect();
    let mut rendered_env = BTreeMap::new();
    for (name, value) in &spec.env {
        let value = match &value.value {
            EnvValue::Text(text) => template::render(text, &values),
            EnvValue::Secret(secret) => resolve_secret(env, secret)
                .map_err(|message| ReconcileError::new("SecretUnavailable", format!("env.{name}: {message}")))?,
        };
        rendered_env.insert(name.clone(), value);
    }
    let probe = spec.health_check.as_ref().and_then(|check| {
        let address = &node.spec.address.value;
        let (interval, timeout) = (check.interval.duration, check.timeout.duration);
        match (&check.http, &check.tcp) {
            (Some(http), _) => {
                let host = http.host.as_ref().unwrap_or(address).clone();
                Some(Probe::Http { host, port: http.port.0, path: http.path.value.clone(), interval, timeout })
            }
            (None, Some(tcp)) => {
                let host = tcp.host.as_ref().unwrap_or(address).clone();
                Some(Probe::Tcp { host, port: tcp.port.0, interval, timeout })
            }
            (None, None) => None,
        }
    });
    Ok(ProcessSpec {
        name: service.name().to_owned(),
        command,
        env: rendered_env,
        working_dir: spec.working_dir.as_deref().map(expand_home),
        probe,
        restart: spec.restart,
        backoff_initial: spec.backoff.initial.duration,
        backoff_max: spec.backoff.max.value.duration,
        stop_grace: spec.stop_grace_period.duration,
    })
}

/// The declared process for `name` on this node, if it should run here.
pub(crate) fn desired(ctx: &Context, name: &str) -> Result<Option<ProcessSpec>, ReconcileError> {
    let Some(service) = ctx.set.services.get(name) else {
        return Ok(None);
    };
    let Some(node) = ctx.set.nodes.get(&ctx.handles.node) else {
        return Ok(None);
    };
    if !ctx.set.runs_on(&service.spec, &ctx.handles.node) {
        return Ok(None);
    }
    render(service, node, &ctx.env).map(Some)
}

pub(crate) async fn reconcile(name: &str, ctx: &Context) -> Result<Outcome, ReconcileError> {
    let desired = desired(ctx, name)?;
    let observed = ctx.handles.supervisor.status(name);
    let mut outcome = Outcome::default();
    match plan(desired, observed.as_ref()) {
        ServiceAction::Nothing => {}
        ServiceAction::Start(process) => {
            outcome.event(Event::normal("Starting", format!("starting {}", process.command.join(" "))));
            ctx.handles.supervisor.start(process).await;
        }
        ServiceAction::Replace(process) => {
            outcome.event(Event::normal("Restarting", "the spec changed: restarting with the new one"));
            ctx.handles.supervisor.start(process).await;
        }
        ServiceAction::Stop => {
            outcome.event(Event::normal("Stopping", "no longer placed on this node: stopping"));
            ctx.handles.supervisor.stop(name).await;
            outcome.tracked = false;
            return Ok(outcome);
        }
    }
    match ctx.handles.supervisor.status(name) {
        Some(status) => {
            outcome.conditions = conditions(&status);
            outcome.details = details(&status);
        }
        None => outcome.tracked = false,
    }
    Ok(outcome)
}

/// `Ready`, `Progressing` and `Degraded` from what the supervisor sees.
pub(crate) fn conditions(status: &UnitStatus) -> Vec<Observed> {
    let exit = status.last_exit.clone().unwrap_or_default();
    let (ready, progressing, degraded) = match status.phase {
        Phase::Running => (("Running", status.message.clone()), None, None),
        Phase::Starting => (("Starting", status.message.clone()), Some("Starting"), None),
        Phase::Unhealthy => (("Unhealthy", status.message.clone()), None, Some("ProbeFailing")),
        Phase::BackingOff if status.port_in_use.is_some() => {
            (("BackingOff", exit.clone()), Some("Restarting"), Some("PortInUse"))
        }
        Phase::BackingOff => (("BackingOff", exit.clone()), Some("Restarting"), Some("CrashLoop")),
        Phase::Exited if status.port_in_use.is_some() => (("Exited", exit.clone()), None, Some("PortInUse")),
        Phase::Exited => (("Exited", exit.clone()), None, Some("Exited")),
        Phase::Stopping => (("Stopping", String::new()), Some("Stopping"), None),
    };
    let is_ready = status.phase == Phase::Running;
    vec![
        Observed::new(ConditionType::Ready, is_ready, ready.0, ready.1),
        Observed::new(ConditionType::Progressing, progressing.is_some(), progressing.unwrap_or("Stable"), ""),
        Observed::new(
            ConditionType::Degraded,
            degraded.is_some(),
            degraded.unwrap_or("AsExpected"),
            if degraded.is_some() { exit } else { String::new() },
        ),
    ]
}

fn details(status: &UnitStatus) -> BTreeMap<String, String> {
    let mut details = BTreeMap::new();
    if let Some(pid) = status.pid {
        details.insert("pid".into(), pid.to_string());
    }
    details.insert("restarts".into(), status.restarts.to_string());
    if let Some(exit) = &status.last_exit {
        details.insert("lastExit".into(), exit.clone());
    }
    if let Some(healthy) = status.healthy {
        details.insert("healthy".into(), healthy.to_string());
    }
    if let Some(port) = status.port_in_use {
        details.insert("portInUse".into(), port.to_string());
    }
    details
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::manifest::kinds::RestartPolicy;

    fn spec(command: &str) -> ProcessSpec {
        ProcessSpec {
            name: "web".into(),
            command: command.split(' ').map(str::to_owned).collect(),
            env: BTreeMap::new(),
            working_dir: None,
            probe: None,
            restart: RestartPolicy::Always,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            stop_grace: Duration::from_secs(10),
        }
    }

    fn running(spec: &ProcessSpec, phase: Phase) -> UnitStatus {
        UnitStatus {
            fingerprint: spec.fingerprint(),
            phase,
            pid: Some(42),
            restarts: 0,
            last_exit: None,
            healthy: None,
            port_in_use: None,
            message: String::new(),
            since: SystemTime::now(),
        }
    }

    #[test]
    fn a_health_check_probes_its_host_else_the_nodes_address() {
        use crate::manifest::{SourceFile, validate};
        let text = "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {name: mini}\nspec: {role: primary, address: 100.64.0.5}\n\
                    ---\napiVersion: agentmesh/v1alpha1\nkind: Service\nmetadata: {name: chroma}\n\
                    spec: {nodes: [mini], command: [chroma], healthCheck: {http: {host: 127.0.0.1, port: 8001}}}\n\
                    ---\napiVersion: agentmesh/v1alpha1\nkind: Service\nmetadata: {name: db}\n\
                    spec: {nodes: [mini], command: [db], healthCheck: {tcp: {port: 5432}}}\n";
        let validation = validate(&[SourceFile { path: "m.yaml".into(), text: text.into() }], Vec::new());
        assert!(validation.is_valid(), "{:?}", validation.diagnostics);
        let set = validation.set;
        let env = NodeEnv::from_parts(None, std::iter::empty()).unwrap();
        let host = |name: &str| match render(&set.services[name], &set.nodes["mini"], &env).unwrap().probe {
            Some(Probe::Http { host, .. } | Probe::Tcp { host, .. }) => host,
            None => panic!("{name} has a probe"),
        };
        assert_eq!((host("chroma"), host("db")), ("127.0.0.1".to_owned(), "100.64.0.5".to_owned()));
    }

    #[test]
    fn plan_compares_declared_and_observed_processes() {
        let v1 = spec("server --port 1");
        let v2 = spec("server --port 2");
        let table = [
            ("nothing declared, nothing running", None, None, ServiceAction::Nothing),
            ("declared, not running", Some(&v1), None, ServiceAction::Start(v1.clone())),
            ("running, no longer declared", None, Some(running(&v1, Phase::Running)), ServiceAction::Stop),
            ("running as declared", Some(&v1), Some(running(&v1, Phase::Running)), ServiceAction::Nothing),
            ("crash-looping as declared", Some(&v1), Some(running(&v1, Phase::BackingOff)), ServiceAction::Nothing),
            ("exited for good as declared", Some(&v1), Some(running(&v1, Phase::Exited)), ServiceAction::Nothing),
            (
                "running an older spec",
                Some(&v2),
                Some(running(&v1, Phase::Running)),
                ServiceAction::Replace(v2.clone()),
            ),
        ];
        for (case, desired, observed, expected) in table {
            assert_eq!(plan(desired.cloned(), observed.as_ref()), expected, "{case}");
        }
    }

    #[test]
    fn conditions_follow_the_phase() {
        let v1 = spec("server");
        let table = [
            (Phase::Running, ("True", "Running"), "False", "False"),
            (Phase::Starting, ("False", "Starting"), "True", "False"),
            (Phase::Unhealthy, ("False", "Unhealthy"), "False", "True"),
            (Phase::BackingOff, ("False", "BackingOff"), "True", "True"),
            (Phase::Exited, ("False", "Exited"), "False", "True"),
        ];
        for (phase, (ready, reason), progressing, degraded) in table {
            let observed = conditions(&running(&v1, phase));
            let status = |i: usize| if observed[i].status { "True" } else { "False" };
            assert_eq!((status(0), observed[0].reason.as_str()), (ready, reason), "{phase:?}");
            assert_eq!(status(1), progressing, "{phase:?} progressing");
            assert_eq!(status(2), degraded, "{phase:?} degraded");
        }
    }

    #[test]
    fn a_port_held_by_a_stranger_is_the_reason_it_is_degraded() {
        let v1 = spec("ollama serve");
        let table = [
            (Phase::BackingOff, None, "CrashLoop"),
            (Phase::BackingOff, Some(11434), "PortInUse"),
            (Phase::Exited, None, "Exited"),
            (Phase::Exited, Some(11434), "PortInUse"),
        ];
        for (phase, port_in_use, reason) in table {
            let status = UnitStatus { port_in_use, ..running(&v1, phase) };
            let degraded = &conditions(&status)[2];
            assert!(degraded.status, "{phase:?} {port_in_use:?}");
            assert_eq!(degraded.reason, reason, "{phase:?} {port_in_use:?}");
        }
    }
}
