//! Resolving each service's [`ServiceOptions`] and checking the plan they
//! make, for [`HostBuilder::build`](super::HostBuilder::build).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use super::build_error::BuildError;
use super::graph::Graph;
use super::inner::Entry;
use super::options::HostOptions;
use super::service_options::ServiceOptions;
use crate::config::Configuration;

/// A deferred [`HostBuilder::configure_service`](super::HostBuilder::configure_service) call.
pub(crate) type ConfigureService<'a> = (String, Box<dyn FnOnce(&mut ServiceOptions) + Send + 'a>);

/// Each service's options: its `[services.<name>]` section, then the
/// `configure_service` calls. A section or call naming no service is an
/// error.
pub(crate) fn resolve(
    configuration: Option<&Configuration>,
    services: &[Entry],
    configure_services: Vec<ConfigureService<'_>>,
) -> Result<Vec<ServiceOptions>, BuildError> {
    let sections: BTreeMap<String, ServiceOptions> = match configuration {
        // Read even when empty: reading marks the section as read.
        Some(configuration) => configuration
            .section("services")
            .map_err(BuildError::Config)?,
        None => BTreeMap::new(),
    };
    if sections.is_empty() && configure_services.is_empty() {
        return Ok(Vec::new()); // every service at its defaults
    }
    let index: HashMap<Arc<str>, usize> = services
        .iter()
        .enumerate()
        .map(|(i, e)| (Arc::clone(&e.name), i))
        .collect();
    let unknown = |origin: &'static str, name: &str| {
        let names: Vec<&str> = index.keys().map(|k| &**k).collect();
        BuildError::UnknownService {
            origin,
            name: Arc::from(name),
            suggestion: crate::config::closest(name, &names).map(Arc::from),
        }
    };
    let mut options = vec![ServiceOptions::default(); services.len()];
    for (name, section) in sections {
        // Environment variables arrive lower-cased: a section matches
        // a service by its exact name, or else by the one name that
        // equals it ignoring case.
        let exact = index.get(name.as_str()).copied();
        let mut folded = index.iter().filter(|(k, _)| k.eq_ignore_ascii_case(&name));
        let found = exact.or_else(|| match (folded.next(), folded.next()) {
            (Some((_, &i)), None) => Some(i),
            _ => None,
        });
        let Some(i) = found else {
            return Err(unknown("[services]", &name));
        };
        options[i] = section;
    }
    for (name, configure) in configure_services {
        let Some(&i) = index.get(name.as_str()) else {
            return Err(unknown("configure_service", &name));
        };
        configure(&mut options[i]);
    }
    Ok(options)
}

/// The per-service budgets that must run one after another must fit in the
/// host-wide budget: every service in sequential mode, a dependency path in
/// concurrent mode.
pub(crate) fn check(
    graph: &Graph,
    services: &[Entry],
    service_options: &[ServiceOptions],
    options: &HostOptions,
) -> Result<(), BuildError> {
    if service_options.is_empty() {
        return Ok(());
    }
    let checks = [
        (
            "stop_timeout",
            "shutdown_timeout",
            Some(options.shutdown_timeout),
            !options.services_stop_concurrently,
            (|o: &ServiceOptions| o.stop_timeout) as fn(&ServiceOptions) -> Option<Duration>,
        ),
        (
            "start_timeout",
            "startup_timeout",
            options.startup_timeout,
            !options.services_start_concurrently,
            |o: &ServiceOptions| o.start_timeout,
        ),
    ];
    for (per_service, option, budget, sequential, pick) in checks {
        let Some(budget) = budget else { continue };
        let (chain, total) = graph.longest_chain(|i| pick(&service_options[i]), sequential);
        if total > budget {
            return Err(BuildError::BudgetExceeded {
                per_service,
                option,
                chain: chain
                    .iter()
                    .map(|&i| Arc::clone(&services[i].name))
                    .collect(),
                total,
                budget,
            });
        }
    }
    Ok(())
}
