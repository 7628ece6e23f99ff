import JSMDomain
import Testing

/// One row of the design's decision table, as a test argument.
struct TableRow: Sendable, CustomTestStringConvertible {
    let name: String
    let identity: ServerIdentity
    let siteHas: [ExistingCloudAccount]
    let outcome: Outcome
    let flags: OutcomeFlags
    let action: SiteAction

    var testDescription: String { name }
}

@Suite("The decision table, row by row")
struct DecisionTableTests {
    static let defaults = MigrationPolicies()

    static let rows: [TableRow] = [
        TableRow(
            name: "customer, site has nothing: create a customer account", identity: Make.customer("c"),
            siteHas: [], outcome: .created, flags: [], action: .createCustomer),
        TableRow(
            name: "customer, site has a customer account: link to it", identity: Make.customer("c"),
            siteHas: [Make.customerAccount], outcome: .linked, flags: [], action: .link(Make.customerAccount)),
        TableRow(
            name: "customer whose email is an Atlassian account on the site: link to the Atlassian account",
            identity: Make.customer("c"), siteHas: [Make.atlassianAccount], outcome: .linked, flags: [],
            action: .link(Make.atlassianAccount)),
        TableRow(
            name: "customer, site has both kinds: link to the Atlassian account", identity: Make.customer("c"),
            siteHas: [Make.customerAccount, Make.atlassianAccount], outcome: .linked, flags: [],
            action: .link(Make.atlassianAccount)),
        TableRow(
            name: "licensed user, site has nothing: create an Atlassian account", identity: Make.licensed("l"),
            siteHas: [], outcome: .created, flags: [], action: .createAtlassianAccount),
        TableRow(
            name: "licensed user, site has an Atlassian account: link", identity: Make.licensed("l"),
            siteHas: [Make.atlassianAccount], outcome: .linked, flags: [], action: .link(Make.atlassianAccount)),
        TableRow(
            name: "licensed user, site has both kinds: link to the Atlassian account, no second account",
            identity: Make.licensed("l"), siteHas: [Make.customerAccount, Make.atlassianAccount], outcome: .linked,
            flags: [], action: .link(Make.atlassianAccount)),
        TableRow(
            name: "licensed user whose email is a customer account on the site: second account",
            identity: Make.licensed("l"), siteHas: [Make.customerAccount], outcome: .created,
            flags: .secondAccount, action: .createAtlassianAccount),
        TableRow(
            name: "deleted reporter: former, whatever the site has", identity: .deleted(userKey: "JIRAUSER10999"),
            siteHas: [Make.atlassianAccount], outcome: .former, flags: [], action: .mapToFormer),
        TableRow(
            name: "user only in an inactive directory: former, even with a valid email",
            identity: Make.inactiveDirectoryUser("old"), siteHas: [Make.customerAccount], outcome: .former,
            flags: [], action: .mapToFormer),
        TableRow(
            name: "inactive-directory user with no email: former, not rejected",
            identity: Make.identity("old", kind: .inactiveDirectory, email: "", position: 3, active: true),
            siteHas: [], outcome: .former, flags: [], action: .mapToFormer),
        TableRow(
            name: "disabled customer: created as usual and flagged disabled",
            identity: Make.customer("c", active: false), siteHas: [], outcome: .created, flags: .disabled,
            action: .createCustomer),
        TableRow(
            name: "disabled licensed user with a customer account on the site: both flags",
            identity: Make.licensed("l", active: false), siteHas: [Make.customerAccount], outcome: .created,
            flags: [.disabled, .secondAccount], action: .createAtlassianAccount),
    ]

    @Test("Each row of the table", arguments: rows)
    func row(_ row: TableRow) {
        let decision = MigrationRules.decide(
            row.identity, existingAccounts: row.siteHas, priorMapping: nil, policies: Self.defaults)
        #expect(decision.outcome == row.outcome)
        #expect(decision.flags == row.flags)
        #expect(decision.action == row.action)
        #expect(decision.reason == nil)
    }

    @Test(
        "Missing, malformed and over-long emails are rejected under --invalid-email block",
        arguments: [
            (nil, DecisionReason.missingEmail), ("  ", .missingEmail), ("ann@localhost", .malformedEmail),
            (String(repeating: "x", count: 65) + "@example.com", .emailLocalPartTooLong),
        ] as [(String?, DecisionReason)],
        [IdentityKind.customer, .licensedUser])
    func invalidEmailBlocked(example: (email: String?, reason: DecisionReason), kind: IdentityKind) {
        let (email, reason) = example
        let identity = ServerIdentity(
            userKey: "k", userName: "k", displayName: "K", rawEmail: email, directoryId: 1, directoryPosition: 0,
            isActive: true, kind: kind)
        let decision = MigrationRules.decide(
            identity, existingAccounts: [Make.atlassianAccount], priorMapping: nil,
            policies: MigrationPolicies(invalidEmail: .block))
        #expect(decision.outcome == .rejected)
        #expect(decision.reason == reason)
        #expect(decision.action == .nothing)
        #expect(!reason.message.isEmpty)
    }

    @Test(
        "Missing, malformed and over-long emails go to the Former container under --invalid-email former",
        arguments: [nil, "", "ann@localhost", String(repeating: "x", count: 65) + "@example.com"] as [String?])
    func invalidEmailToFormer(email: String?) {
        let identity = ServerIdentity(
            userKey: "k", userName: "k", displayName: "K", rawEmail: email, directoryId: 1, directoryPosition: 0,
            isActive: false, kind: .customer)
        let decision = MigrationRules.decide(
            identity, existingAccounts: [], priorMapping: nil, policies: MigrationPolicies(invalidEmail: .former))
        #expect(decision.outcome == .former)
        #expect(decision.action == .mapToFormer)
        #expect(decision.flags == [.invalidEmail, .disabled])
        #expect(decision.reason != nil)
    }

    @Test(
        "An identity an earlier migration mapped on this site is already migrated: no cloud call",
        arguments: [
            Make.customer("c"), Make.licensed("l"), Make.licensed("bad", email: "not-an-email"),
            .deleted(userKey: "gone"),
        ])
    func alreadyMigrated(identity: ServerIdentity) {
        let prior = PriorMapping(accountId: "atl-9", accountType: .atlassian)
        let decision = MigrationRules.decide(
            identity, existingAccounts: [Make.customerAccount], priorMapping: prior, policies: Self.defaults)
        #expect(decision.outcome == .alreadyMigrated)
        #expect(decision.action == .nothing)
    }

    @Test("Several accounts of one type on the site: every worker links to the same (smallest id)")
    func deterministicLinkTarget() {
        let accounts = [
            ExistingCloudAccount(accountId: "b-2", type: .atlassian),
            ExistingCloudAccount(accountId: "a-1", type: .atlassian),
            ExistingCloudAccount(accountId: "c-3", type: .atlassian),
        ]
        for accounts in [accounts, accounts.reversed(), accounts.shuffled()] {
            let decision = MigrationRules.decide(
                Make.licensed("l"), existingAccounts: accounts, priorMapping: nil, policies: Self.defaults)
            #expect(decision.action == .link(ExistingCloudAccount(accountId: "a-1", type: .atlassian)))
        }
    }

    @Test("A decision names the account type it creates")
    func accountTypeToCreate() {
        let create = { (identity: ServerIdentity) in
            MigrationRules.decide(identity, existingAccounts: [], priorMapping: nil, policies: Self.defaults)
                .accountTypeToCreate
        }
        #expect(create(Make.customer("c")) == .customer)
        #expect(create(Make.licensed("l")) == .atlassian)
        #expect(create(.deleted(userKey: "d")) == nil)
    }

    @Test("Flags have stable report names")
    func flagNames() {
        #expect(OutcomeFlags([.merged, .disabled, .secondAccount]).names == ["disabled", "second_account", "merged"])
        #expect(OutcomeFlags().names.isEmpty)
        #expect(Outcome.alreadyMigrated.rawValue == "already_migrated")
    }
}
