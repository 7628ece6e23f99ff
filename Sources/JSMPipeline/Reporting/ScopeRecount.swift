import JSMDomain
import JSMSource

/// A migration's scope recomputed from the source database with JSMDomain's rules, without the
/// messages, the workers' claims or the aggregator: `verify`'s independent answer to "which
/// identities should this migration have taken?".
public struct ScopeRecount: Sendable {
    /// Each selected project's own counts, by project id.
    public private(set) var perProject: [Int64: ScopeCounts] = [:]
    /// Selected project ids the source no longer has.
    public private(set) var missingProjects: [Int64] = []

    /// The side of the source's records in the keys ``recount(source:options:projectIds:into:)``
    /// writes (the ledger's are another).
    static let sourceSide: UInt8 = 0

    /// Recounts the scope of a migration with these options and selected project ids.
    ///
    /// Each selected project's references are read with ``JiraSource/relatedIdentities(of:)`` and
    /// classified in chunks of ``JiraSource/maximumKeysPerLookup``; the `all` options stream every
    /// classified identity and the request reporters. Every in-scope user key goes to `keys`
    /// (``sourceSide``, its category), once per claim: a key may come several times, and its first
    /// category is the one it counts in (the rules give each identity one category, so this only
    /// matters if the source changes during the recount). Memory: one project's references at a
    /// time, and the request reporters with `--customers all` without `--include-requestless`.
    static func recount(
        source: JiraSource, options: ScopeOptions, projectIds: [Int64], into keys: inout KeyedRecords
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
            let referenced = firstRole.keys.sorted()
            for slice in referenced.chunked(JiraSource.maximumKeysPerLookup) {
                let chunk = Array(slice)
                for classified in try await source.classify(userKeys: chunk, classifier: classifier) {
                    identities[classified.identity.userKey] = classified.identity
                }
            }
            let scope = selection.projectScope(for: project, references: references, identities: identities)
            for (category, inScope) in [
                (ScopeCategory.customer, scope.customers), (.licensedUser, scope.licensedUsers),
                (.former, scope.formers),
            ] {
                for key in inScope { try keys.append(key, side: sourceSide, category.rawValue) }
            }
            recount.perProject[project.id] = scope.counts
        }
        guard options.customers == .all || options.users == .all else { return recount }
        var reporters = Set<String>()
        if selection.needsRequestReporters {
            for try await reporter in source.requestReporters() { reporters.insert(reporter) }
        }
        // Only identities with a directory user: the others are formers, which `all` never takes
        // and which have no groups.
        for try await classified in source.classifiedDirectoryUsers(classifier: classifier) {
            let identity = classified.identity
            let isReporter = reporters.contains(identity.userKey)
            if let category = selection.categoryWithoutReference(identity, isRequestReporter: isReporter) {
                try keys.append(identity.userKey, side: sourceSide, category.rawValue)
            }
        }
        return recount
    }
}
