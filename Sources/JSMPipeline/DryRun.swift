import JSMCloud
import JSMDomain
import JSMLedger
import JSMSource
import Logging

/// A migration's scope computed straight from the source, in memory: every in-scope identity with
/// its category, and the in-scope user keys each selected project references.
public struct SourceScope: Sendable {
    /// In-scope identities by user key.
    public internal(set) var identities: [String: ServerIdentity] = [:]
    /// Each in-scope user key's category.
    public internal(set) var categories: [String: ScopeCategory] = [:]
    /// In-scope user keys per selected project.
    public internal(set) var projectReferences: [Int64: Set<String>] = [:]

    /// Reads the scope of `options` over `projects` from `source`, with the same rules as the
    /// pipeline (JSMDomain's `ScopeSelection`), but without the ledger or the broker.
    public static func compute(
        source: JiraSource, options: ScopeOptions, projects: [SelectedProject]
    ) async throws -> SourceScope {
        let selection = try ScopeSelection(options: options, projects: projects)
        let classifier = try await source.loadClassifier()
        var scope = SourceScope()
        for project in projects {
            var keys = Set<String>()
            for try await reference in source.relatedIdentities(of: project) { keys.insert(reference.userKey) }
            let ordered = keys.sorted()
            var inScope = Set<String>()
            var start = 0
            while start < ordered.count {
                let chunk = Array(ordered[start..<min(start + JiraSource.maximumKeysPerLookup, ordered.count)])
                start += chunk.count
                for classified in try await source.classify(userKeys: chunk, classifier: classifier) {
                    let identity = classified.identity
                    guard let category = selection.categoryWhenReferenced(identity) else { continue }
                    inScope.insert(identity.userKey)
                    scope.insert(identity, as: category)
                }
            }
            scope.projectReferences[project.id] = inScope
        }
        guard options.customers == .all || options.users == .all else { return scope }
        var reporters = Set<String>()
        for try await key in source.requestReporters() { reporters.insert(key) }
        for try await classified in source.classifiedIdentities(classifier: classifier) {
            let identity = classified.identity
            if let category = selection.categoryWithoutReference(
                identity, isRequestReporter: reporters.contains(identity.userKey))
            {
                scope.insert(identity, as: category)
            }
        }
        return scope
    }

    private mutating func insert(_ identity: ServerIdentity, as category: ScopeCategory) {
        guard identities[identity.userKey] == nil else { return }
        identities[identity.userKey] = identity
        categories[identity.userKey] = category
    }

    /// In-scope identities per category.
    public var counts: ScopeCounts {
        var counts = ScopeCounts()
        for category in categories.values {
            switch category {
            case .customer: counts.customers += 1
            case .licensedUser: counts.licensedUsers += 1
            case .former: counts.formers += 1
            }
        }
        return counts
    }
}

/// The totals a migration will report, predicted without changing anything: per category and
/// per project, in the ledger's own shape.
public struct PredictedTotals: Sendable, Hashable {
    /// Per category.
    public let byCategory: [ScopeCategory: OutcomeTally]
    /// Per selected project, per category.
    public let byProject: [Int64: [ScopeCategory: OutcomeTally]]
}

/// `start --dry-run`: classifies every identity of the scope and applies the rules against what
/// the ledger and the site hold now, with read-only site lookups; it records and publishes nothing.
public struct MigrationDryRun: Sendable {
    let ledger: Ledger
    let source: JiraSource
    let site: any CloudSite
    let siteConcurrency: Int

    /// A dry run over the ledger (for earlier migrations' mappings), the source and the site.
    public init(ledger: Ledger, source: JiraSource, site: any CloudSite, siteConcurrency: Int = 32) {
        self.ledger = ledger
        self.source = source
        self.site = site
        self.siteConcurrency = siteConcurrency
    }

    /// The totals a real run of `definition` would report if nothing changes meanwhile.
    public func predict(_ definition: MigrationDefinition) async throws -> PredictedTotals {
        let scope = try await SourceScope.compute(
            source: source, options: definition.scope, projects: definition.projects)
        let keys = scope.identities.keys.sorted()
        var prior: [String: PriorMapping] = [:]
        var start = 0
        while start < keys.count {
            let chunk = Array(keys[start..<min(start + 5_000, keys.count)])
            start += chunk.count
            prior.merge(try await ledger.priorMappings(siteId: definition.siteId, userKeys: chunk)) { first, _ in first
            }
        }
        let ordered = keys.compactMap { scope.identities[$0] }
        let plan = BatchPlan(identities: ordered, priorMappings: prior, policies: definition.policies)
        var outcomes: [String: Outcome] = [:]
        for decided in plan.settled { outcomes[decided.identity.userKey] = decided.decision.outcome }
        for (key, outcome) in try await predictAtSite(plan.pending) { outcomes[key] = outcome }
        var byCategory: [ScopeCategory: OutcomeTally] = [:]
        for (key, category) in scope.categories {
            byCategory[category, default: OutcomeTally()].add(outcome: outcomes[key], count: 1)
        }
        var byProject: [Int64: [ScopeCategory: OutcomeTally]] = [:]
        for (project, references) in scope.projectReferences {
            var tallies: [ScopeCategory: OutcomeTally] = [:]
            for key in references {
                guard let category = scope.categories[key] else { continue }
                tallies[category, default: OutcomeTally()].add(outcome: outcomes[key], count: 1)
            }
            byProject[project] = tallies
        }
        return PredictedTotals(byCategory: byCategory, byProject: byProject)
    }

    /// Each pending group's outcomes from a search of the site, `siteConcurrency` at a time.
    private func predictAtSite(_ groups: [EmailGroupPlan]) async throws -> [(String, Outcome)] {
        var outcomes: [(String, Outcome)] = []
        try await withThrowingTaskGroup(of: [(String, Outcome)].self) { tasks in
            var next = 0
            func startNext() {
                guard next < groups.count else { return }
                let group = groups[next]
                next += 1
                tasks.addTask {
                    let existing = try await site.accounts(withEmail: group.email)
                    let decision = group.decidePrimary(existingAccounts: existing)
                    var result = [(group.primary.userKey, decision.outcome)]
                    if decision.outcome == .created || decision.outcome == .linked {
                        // The others follow the primary's account: linked, flagged merged.
                        result += group.followers.map { ($0.userKey, Outcome.linked) }
                    } else {
                        result += group.followers.map { ($0.userKey, decision.outcome) }
                    }
                    return result
                }
            }
            for _ in 0..<max(1, siteConcurrency) { startNext() }
            while let done = try await tasks.next() {
                outcomes += done
                startNext()
            }
        }
        return outcomes
    }
}
