import JSMDomain
import JSMSource

/// A migration's scope recomputed from the source database with JSMDomain's rules, without the
/// messages, the workers' claims or the aggregator: `verify`'s independent answer to "which
/// identities should this migration have taken?".
public struct ScopeRecount: Sendable {
    /// Customers in scope, by user key.
    public private(set) var customers: Set<String> = []
    /// Licensed users in scope, by user key.
    public private(set) var licensedUsers: Set<String> = []
    /// Formers in scope, by user key.
    public private(set) var formers: Set<String> = []
    /// Each selected project's own counts, by project id.
    public private(set) var perProject: [Int64: ScopeCounts] = [:]
    /// Selected project ids the source no longer has.
    public private(set) var missingProjects: [Int64] = []

    /// The counts per category.
    public var counts: ScopeCounts {
        ScopeCounts(customers: customers.count, licensedUsers: licensedUsers.count, formers: formers.count)
    }

    /// The category a user key is in scope as, or `nil`.
    public func category(of userKey: String) -> ScopeCategory? {
        if customers.contains(userKey) { return .customer }
        if licensedUsers.contains(userKey) { return .licensedUser }
        if formers.contains(userKey) { return .former }
        return nil
    }

    mutating func insert(_ userKey: String, as category: ScopeCategory) {
        // An identity is counted once, in the first category it is found in (the rules give each
        // identity one category, so this only matters if the source changes during the recount).
        guard self.category(of: userKey) == nil else { return }
        switch category {
        case .customer: customers.insert(userKey)
        case .licensedUser: licensedUsers.insert(userKey)
        case .former: formers.insert(userKey)
        }
    }

    /// Removes and returns the category of `userKey`: the recount is consumed while it is compared
    /// with the ledger's keys, so what remains afterwards is what the ledger never claimed.
    mutating func remove(_ userKey: String) -> ScopeCategory? {
        if customers.remove(userKey) != nil { return .customer }
        if licensedUsers.remove(userKey) != nil { return .licensedUser }
        if formers.remove(userKey) != nil { return .former }
        return nil
    }

    /// What remains, by key.
    var remainingKeys: [String] { (customers.union(licensedUsers).union(formers)).sorted() }

    /// Recounts the scope of a migration with these options and selected project ids.
    ///
    /// Each selected project's references are read with ``JiraSource/relatedIdentities(of:)`` and
    /// classified in chunks of ``JiraSource/maximumKeysPerLookup``; the `all` options stream every
    /// classified identity and the request reporters. Memory: the sets of in-scope user keys.
    public static func recount(
        source: JiraSource, options: ScopeOptions, projectIds: [Int64]
    ) async throws -> ScopeRecount {
        var recount = ScopeRecount()
        let byId = Dictionary(try await source.projects().map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        var selected: [SelectedProject] = []
        for id in projectIds {
            if let project = byId[id] { selected.append(project) } else { recount.missingProjects.append(id) }
        }
        let selection = try ScopeSelection(options: options, projects: selected)
        let classifier = try await source.loadClassifier()
        for project in selected {
            // One reference per user key is all the scope rules need (the role does not change the category).
            var firstRole: [String: ReferenceRole] = [:]
            for try await reference in source.relatedIdentities(of: project) where firstRole[reference.userKey] == nil {
                firstRole[reference.userKey] = reference.role
            }
            let references = firstRole.map { IdentityReference(userKey: $0.key, role: $0.value) }
            var identities: [String: ServerIdentity] = [:]
            let keys = firstRole.keys.sorted()
            for slice in keys.chunked(JiraSource.maximumKeysPerLookup) {
                let chunk = Array(slice)
                for classified in try await source.classify(userKeys: chunk, classifier: classifier) {
                    identities[classified.identity.userKey] = classified.identity
                }
            }
            let scope = selection.projectScope(for: project, references: references, identities: identities)
            for key in scope.customers { recount.insert(key, as: .customer) }
            for key in scope.licensedUsers { recount.insert(key, as: .licensedUser) }
            for key in scope.formers { recount.insert(key, as: .former) }
            recount.perProject[project.id] = scope.counts
        }
        guard options.customers == .all || options.users == .all else { return recount }
        var reporters = Set<String>()
        if options.customers == .all {
            for try await reporter in source.requestReporters() { reporters.insert(reporter) }
        }
        for try await classified in source.classifiedIdentities(classifier: classifier) {
            let identity = classified.identity
            let isReporter = reporters.contains(identity.userKey)
            if let category = selection.categoryWithoutReference(identity, isRequestReporter: isReporter) {
                recount.insert(identity.userKey, as: category)
            }
        }
        return recount
    }
}
