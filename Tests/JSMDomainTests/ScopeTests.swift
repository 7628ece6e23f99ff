import JSMDomain
import Testing

@Suite("What is in scope")
struct ScopeTests {
    static let desk = SelectedProject(id: 1, key: "HELP", name: "Help desk", projectType: "service_desk")
    static let facilities = SelectedProject(id: 2, key: "FAC", name: "Facilities", projectType: "service_desk")
    static let software = SelectedProject(id: 3, key: "APP", name: "App", projectType: "software")

    static let identities: [String: ServerIdentity] = Dictionary(
        uniqueKeysWithValues: [
            Make.customer("reporter"), Make.customer("participant"), Make.customer("org-member"),
            Make.customer("elsewhere"), Make.customer("requestless"), Make.licensed("agent"), Make.licensed("dev"),
            Make.inactiveDirectoryUser("retired"),
        ].map { ($0.userKey, $0) })

    static let organizations: [Int64: [String]] = [50: ["org-member"]]

    static func references(_ issues: [IssueReferences]) -> [IdentityReference] {
        issues.flatMap { $0.references(organizationMembers: organizations) }
    }

    static let deskIssues = [
        IssueReferences(issueId: 10, reporter: "reporter", assignee: "agent", participants: ["participant"]),
        IssueReferences(issueId: 11, reporter: "JIRAUSER-deleted", creator: "agent", sharedOrganizationIds: [50]),
    ]

    @Test("--customers none is refused when a selected project is a service project")
    func customersNoneRefused() {
        let error = #expect(throws: DomainError.self) {
            try ScopeSelection(
                options: ScopeOptions(customers: .none), projects: [Self.software, Self.desk, Self.facilities])
        }
        #expect(error?.code == .customersNoneWithServiceProject)
        #expect(error?.message.contains("--customers none") == true)
        #expect(error?.message.contains("HELP, FAC") == true)
        #expect(error?.message.contains("APP") == false)
    }

    @Test("--customers none is allowed when no selected project is a service project")
    func customersNoneAllowed() throws {
        let selection = try ScopeSelection(options: ScopeOptions(customers: .none), projects: [Self.software])
        let scope = selection.projectScope(
            for: Self.software,
            references: Self.references([IssueReferences(issueId: 1, reporter: "reporter", assignee: "dev")]),
            identities: Self.identities)
        #expect(scope.customers.isEmpty)
        #expect(scope.licensedUsers == ["dev"])
    }

    @Test("--include-requestless without --customers all is refused")
    func requestlessNeedsAll() {
        let error = #expect(throws: DomainError.self) {
            try ScopeSelection(options: ScopeOptions(customers: .related, includeRequestless: true), projects: [])
        }
        #expect(error?.code == .requestlessWithoutAllCustomers)
        #expect(error?.message.contains("--customers related") == true)
    }

    @Test("A customer related only as a request participant is in scope")
    func participantOnly() throws {
        let selection = try ScopeSelection(options: ScopeOptions(), projects: [Self.desk])
        let scope = selection.projectScope(
            for: Self.desk, references: Self.references([Self.deskIssues[0]]), identities: Self.identities)
        #expect(scope.customers == ["reporter", "participant"])
    }

    @Test("A customer related only as a member of an organization the request is shared with is in scope")
    func organizationMemberOnly() throws {
        let selection = try ScopeSelection(options: ScopeOptions(), projects: [Self.desk])
        let references = Self.references([Self.deskIssues[1]])
        #expect(references.contains(IdentityReference(userKey: "org-member", role: .organizationMember)))
        let scope = selection.projectScope(for: Self.desk, references: references, identities: Self.identities)
        #expect(scope.customers == ["org-member"])
    }

    @Test("A deleted reporter is a former, whatever the options")
    func deletedReporterIsFormer() throws {
        let selection = try ScopeSelection(
            options: ScopeOptions(customers: .none, users: .none), projects: [Self.software])
        let scope = selection.projectScope(
            for: Self.software,
            references: Self.references([IssueReferences(issueId: 1, reporter: "gone", assignee: "retired")]),
            identities: Self.identities)
        #expect(scope.formers == ["gone", "retired"])
        #expect(scope.counts == ScopeCounts(formers: 2))
    }

    @Test("--users none leaves referenced licensed users out; --users related takes them")
    func usersOption() throws {
        let references = Self.references(Self.deskIssues)
        let none = try ScopeSelection(options: ScopeOptions(users: .none), projects: [Self.desk])
        let related = try ScopeSelection(options: ScopeOptions(users: .related), projects: [Self.desk])
        #expect(
            none.projectScope(for: Self.desk, references: references, identities: Self.identities).licensedUsers.isEmpty
        )
        #expect(
            related.projectScope(for: Self.desk, references: references, identities: Self.identities).licensedUsers
                == ["agent"])
    }

    @Test("Identities referenced by several selected projects are counted once")
    func countedOnceAcrossProjects() throws {
        let selection = try ScopeSelection(options: ScopeOptions(), projects: [Self.desk, Self.facilities])
        let deskScope = selection.projectScope(
            for: Self.desk, references: Self.references(Self.deskIssues), identities: Self.identities)
        let facilitiesScope = selection.projectScope(
            for: Self.facilities,
            references: Self.references([
                IssueReferences(issueId: 20, reporter: "reporter", assignee: "agent", participants: ["reporter"]),
                IssueReferences(issueId: 21, reporter: "JIRAUSER-deleted", sharedOrganizationIds: [50]),
            ]),
            identities: Self.identities)
        let scope = selection.migrationScope(
            projectScopes: [deskScope, facilitiesScope], allIdentities: [], requestReporters: [])

        #expect(deskScope.counts == ScopeCounts(customers: 3, licensedUsers: 1, formers: 1))
        #expect(facilitiesScope.counts == ScopeCounts(customers: 2, licensedUsers: 1, formers: 1))
        #expect(scope.counts == ScopeCounts(customers: 3, licensedUsers: 1, formers: 1))
        #expect(scope.perProject[1] == deskScope.counts)
        #expect(scope.perProject[2] == facilitiesScope.counts)
        #expect(scope.category(ofUserKey: "JIRAUSER-deleted") == .former)
        #expect(scope.category(ofUserKey: "elsewhere") == nil)
    }

    @Test("--customers all takes every request reporter, plus what the selected projects reference")
    func customersAll() throws {
        let selection = try ScopeSelection(options: ScopeOptions(customers: .all, users: .none), projects: [Self.desk])
        let deskScope = selection.projectScope(
            for: Self.desk, references: Self.references(Self.deskIssues), identities: Self.identities)
        let scope = selection.migrationScope(
            projectScopes: [deskScope], allIdentities: Self.identities.values,
            requestReporters: ["elsewhere", "reporter", "agent"])
        #expect(scope.customers == ["elsewhere", "reporter", "participant", "org-member"])
        #expect(scope.licensedUsers.isEmpty, "--users none, even for a licensed request reporter")
        #expect(!scope.customers.contains("requestless"))
    }

    @Test("--include-requestless adds customers who never raised a request; formers never come from 'all'")
    func includeRequestless() throws {
        let selection = try ScopeSelection(
            options: ScopeOptions(customers: .all, includeRequestless: true, users: .all), projects: [])
        let scope = selection.migrationScope(
            projectScopes: [], allIdentities: Self.identities.values, requestReporters: [])
        #expect(scope.customers == ["reporter", "participant", "org-member", "elsewhere", "requestless"])
        #expect(scope.licensedUsers == ["agent", "dev"])
        #expect(scope.formers.isEmpty)
    }

    @Test("the request reporters are needed only by --customers all without --include-requestless")
    func requestReportersNeeded() throws {
        var needing: [String] = []
        for customers in [CustomerScope.all, .related, .none] {
            for users in [UserScope.all, .related, .none] {
                for requestless in customers == .all ? [false, true] : [false] {
                    let options = ScopeOptions(customers: customers, includeRequestless: requestless, users: users)
                    let selection = try ScopeSelection(options: options, projects: [])
                    let answersDiffer = Self.identities.values.contains { identity in
                        selection.categoryWithoutReference(identity, isRequestReporter: true)
                            != selection.categoryWithoutReference(identity, isRequestReporter: false)
                    }
                    // Skipping the reporters must never change a category; needing them must be real.
                    #expect(answersDiffer == selection.needsRequestReporters, "\(options)")
                    if selection.needsRequestReporters { needing.append("\(customers) \(users) \(requestless)") }
                }
            }
        }
        #expect(needing == ["all all false", "all related false", "all none false"])
    }

    @Test("Migrating in advance: no projects, --users all")
    func migrateInAdvance() throws {
        let selection = try ScopeSelection(options: ScopeOptions(customers: .none, users: .all), projects: [])
        let scope = selection.migrationScope(
            projectScopes: [], allIdentities: Self.identities.values, requestReporters: ["reporter"])
        #expect(scope.counts == ScopeCounts(licensedUsers: 2))
        #expect(scope.perProject.isEmpty)
    }

    @Test("Property: every in-scope identity is in exactly one category, and projects only add what they reference")
    func reconciliationProperty() throws {
        var random = SplitMix64(seed: 0x5EED_0004)
        let keys = Array(Self.identities.keys).sorted() + ["gone-1", "gone-2"]
        let roles = ReferenceRole.allCases
        for _ in 0..<300 {
            let options = ScopeOptions(
                customers: [.all, .related].randomElement(using: &random) ?? .related,
                users: UserScope.allCases.randomElement(using: &random) ?? .related)
            let projects = [Self.desk, Self.facilities, Self.software].filter { _ in Bool.random(using: &random) }
            let selection = try ScopeSelection(options: options, projects: projects)
            let projectScopes = projects.map { project in
                let references = (0..<Int.random(in: 0...12, using: &random)).map { _ in
                    IdentityReference(
                        userKey: keys.randomElement(using: &random) ?? "x",
                        role: roles.randomElement(using: &random) ?? .reporter)
                }
                return selection.projectScope(for: project, references: references, identities: Self.identities)
            }
            let reporters = Set(keys.filter { _ in Bool.random(using: &random) })
            let scope = selection.migrationScope(
                projectScopes: projectScopes, allIdentities: Self.identities.values, requestReporters: reporters)
            #expect(scope.customers.isDisjoint(with: scope.licensedUsers))
            #expect(scope.customers.isDisjoint(with: scope.formers))
            #expect(scope.licensedUsers.isDisjoint(with: scope.formers))
            for projectScope in projectScopes {
                #expect(projectScope.customers.isSubset(of: scope.customers))
                #expect(projectScope.licensedUsers.isSubset(of: scope.licensedUsers))
                #expect(projectScope.formers.isSubset(of: scope.formers))
                #expect(scope.perProject[projectScope.project.id] == projectScope.counts)
            }
            let referenced = projectScopes.reduce(into: Set<String>()) {
                $0.formUnion($1.customers.union($1.licensedUsers).union($1.formers))
            }
            #expect(scope.counts.total >= referenced.count)
        }
    }
}
