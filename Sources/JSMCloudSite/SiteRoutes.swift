import Hummingbird
import JSMDomain

/// The endpoints: Atlassian's under `/rest`, and this site's own verification endpoints under
/// `/_local/v1` (not part of Atlassian's API).
struct SiteRoutes: Sendable {
    let store: any AccountStore
    let writer: AccountWriter
    let maxBodyBytes: Int
    /// Atlassian API requests received, reported by `/_local/v1/counts`.
    let requests: RequestCounter
    /// Armed by `POST /_local/v1/faults`.
    let faults: FaultInjector
    /// Armed by `POST /_local/v1/faults?mode=burst`.
    let burst: BurstInjector

    private func baseURL(_ request: Request) -> String {
        "http://" + (request.head.authority ?? "localhost")
    }

    // MARK: Service desk

    /// `POST /rest/servicedeskapi/customer[?strictConflictStatusCode=true]`.
    ///
    /// An email that already has an account of either type is a conflict: 409 when the caller asks
    /// for strict codes, 400 otherwise (Atlassian's default). A customer is never created beside an
    /// Atlassian account. Nothing is ever sent to the customer.
    func createCustomer(_ request: Request, context: some RequestContext) async throws -> Response {
        let strict = request.uri.queryParameters["strictConflictStatusCode"]?.lowercased() == "true"
        var request = request
        let body: CustomerCreateRequest
        do {
            body = try await BodyProblem.decode(CustomerCreateRequest.self, from: &request, limit: maxBodyBytes)
        } catch let problem as BodyProblem {
            return SiteResponse.serviceDeskError(.badRequest, problem.message, key: "invalid.body")
        }
        let email: NormalizedEmail
        switch SiteValidation.email(body.email, field: "email") {
        case .success(let valid): email = valid
        case .failure(let problem):
            return SiteResponse.serviceDeskError(.badRequest, problem.message, key: "invalid.email")
        }
        let displayName: String
        switch SiteValidation.displayName(body.displayName ?? body.fullName, email: email, field: "displayName") {
        case .success(let name): displayName = name
        case .failure(let problem):
            return SiteResponse.serviceDeskError(.badRequest, problem.message, key: "invalid.display.name")
        }
        if let status = faults.failure(for: email.value) {
            return SiteResponse.serviceDeskError(
                HTTPResponse.Status(code: status), "Injected fault (POST /_local/v1/faults).", key: "injected.fault")
        }
        let creation = try await writer.create(NewSiteAccount(type: .customer, email: email, displayName: displayName))
        guard case .created(let account) = creation else {
            return SiteResponse.serviceDeskError(
                strict ? .conflict : .badRequest, "An account already exists for this email address.",
                key: "email.exists")
        }
        return SiteResponse.json(CustomerBody(account, baseURL: baseURL(request)), status: .created)
    }

    // MARK: Users

    /// `GET /rest/api/3/user/search?query=<email>[&accountId=][&startAt=][&maxResults=]`.
    ///
    /// Matches the normalised email exactly (Atlassian also matches name prefixes); Atlassian
    /// accounts first.
    func searchUsers(_ request: Request, context: some RequestContext) async throws -> Response {
        let parameters = request.uri.queryParameters
        let startAt = parameters["startAt"].flatMap { Int($0) } ?? 0
        let maxResults = parameters["maxResults"].flatMap { Int($0) } ?? 50
        guard startAt >= 0, (0...1000).contains(maxResults) else {
            return SiteResponse.platformError(.badRequest, "startAt must be 0 or more and maxResults 0 to 1000.")
        }
        var accounts: [SiteAccount]
        if let accountId = parameters["accountId"], !accountId.isEmpty {
            accounts = try await store.account(withId: String(accountId)).map { [$0] } ?? []
        } else if let query = parameters["query"], !query.isEmpty {
            if let email = NormalizedEmail(String(query)) {
                accounts = try await store.accounts(withEmail: email.value)
            } else {
                accounts = []
            }
        } else {
            return SiteResponse.platformError(.badRequest, "The query parameter 'query' or 'accountId' is required.")
        }
        accounts = Array(accounts.dropFirst(startAt).prefix(maxResults))
        let base = baseURL(request)
        return SiteResponse.json(accounts.map { UserBody($0, baseURL: base) }, status: .ok)
    }

    /// `GET /rest/api/3/user?accountId=`.
    func user(_ request: Request, context: some RequestContext) async throws -> Response {
        guard let accountId = request.uri.queryParameters["accountId"], !accountId.isEmpty else {
            return SiteResponse.platformError(.badRequest, "The query parameter 'accountId' is required.")
        }
        guard let account = try await store.account(withId: String(accountId)) else {
            return SiteResponse.platformError(.notFound, "The user with account ID '\(accountId)' does not exist.")
        }
        return SiteResponse.json(UserBody(account, baseURL: baseURL(request)), status: .ok)
    }

    /// The most users one page of `GET /rest/api/3/user/bulk` holds here. Atlassian documents
    /// `maxResults` (default 10) without a maximum; a larger request gets this many per page.
    static let bulkUsersPageLimit = 100

    /// `GET /rest/api/3/user/bulk?accountId=&accountId=[&startAt=][&maxResults=]`: the named
    /// accounts the site holds, in the order named, as a `PageBeanUser`; an id the site lacks is
    /// left out.
    func bulkUsers(_ request: Request, context: some RequestContext) async throws -> Response {
        let parameters = request.uri.queryParameters
        var seen = Set<String>()
        let ids = parameters[values: "accountId"].map(String.init).filter { !$0.isEmpty && seen.insert($0).inserted }
        guard !ids.isEmpty else {
            return SiteResponse.platformError(.badRequest, "The query parameter 'accountId' is required.")
        }
        guard let paging = PageRequest(parameters, defaultSize: 10, limit: Self.bulkUsersPageLimit) else {
            return PageRequest.refusal
        }
        var found: [SiteAccount] = []
        for id in ids {
            if let account = try await store.account(withId: id) { found.append(account) }
        }
        let base = baseURL(request)
        return SiteResponse.json(
            PageBody(
                path: base + "/rest/api/3/user/bulk?" + ids.map { "accountId=" + $0 }.joined(separator: "&"),
                paging: paging, total: found.count,
                values: found.dropFirst(paging.startAt).prefix(paging.maxResults).map { UserBody($0, baseURL: base) }),
            status: .ok)
    }

    /// `POST /rest/api/3/user`: creates an Atlassian account, never inviting anyone; `products: []`
    /// gives no product access (the migration's way), no `products` field the default access.
    ///
    /// Atlassian's documented answers when the email already has an Atlassian account: 201 with
    /// that account when it has access to Jira (any requested products are added), 201 too when it
    /// has none but the request names products (they are granted), and 400 when it has none and
    /// none are requested. A customer account with the same email does not count: the email gets
    /// a second, Atlassian, account (201).
    func createUser(_ request: Request, context: some RequestContext) async throws -> Response {
        var request = request
        let body = try await BodyProblem.decode(UserCreateRequest.self, from: &request, limit: maxBodyBytes)
        let email: NormalizedEmail
        switch SiteValidation.email(body.emailAddress, field: "emailAddress") {
        case .success(let valid): email = valid
        case .failure(let problem):
            return SiteResponse.platformError(.badRequest, problem.message, errors: ["emailAddress": problem.message])
        }
        let displayName: String
        switch SiteValidation.displayName(body.displayName, email: email, field: "displayName") {
        case .success(let name): displayName = name
        case .failure(let problem):
            return SiteResponse.platformError(.badRequest, problem.message, errors: ["displayName": problem.message])
        }
        let products: [String]
        switch SiteValidation.products(body.products) {
        case .success(let valid): products = valid
        case .failure(let problem):
            return SiteResponse.platformError(.badRequest, problem.message, errors: ["products": problem.message])
        }
        let creation = try await writer.create(
            NewSiteAccount(type: .atlassian, email: email, displayName: displayName, products: products))
        switch creation {
        case .created(let account):
            return SiteResponse.json(UserBody(account, baseURL: baseURL(request)), status: .created)
        case .existing(let existing):
            guard existing.hasProductAccess || !products.isEmpty else {
                return SiteResponse.platformError(
                    .badRequest,
                    "The user with this email address already exists, has no access to Jira, "
                        + "and no product was requested.")
            }
            var account = existing
            if !Set(products).isSubset(of: existing.products) {
                guard let granted = try await store.grantProducts(products, toAccountId: existing.accountId) else {
                    throw AccountStoreError("an existing Atlassian account could not be read back for a product grant")
                }
                account = granted
            }
            return SiteResponse.json(UserBody(account, baseURL: baseURL(request)), status: .created)
        }
    }

    // MARK: Groups

    /// `POST /rest/api/3/group`: 400 when a group with that name (any case) exists, as Jira does.
    func createGroup(_ request: Request, context: some RequestContext) async throws -> Response {
        var request = request
        let body = try await BodyProblem.decode(GroupCreateRequest.self, from: &request, limit: maxBodyBytes)
        let name = body.name?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        guard !name.isEmpty else {
            return SiteResponse.platformError(
                .badRequest, "The field 'name' is required.", errors: ["name": "required"])
        }
        guard name.utf8.count <= SiteValidation.maxNameLength * 4, name.count <= SiteValidation.maxNameLength else {
            return SiteResponse.platformError(.badRequest, "The field 'name' must be at most 255 characters.")
        }
        switch try await store.createGroup(named: name) {
        case .created(let group):
            return SiteResponse.json(GroupBody(group, baseURL: baseURL(request)), status: .created)
        case .existing(let group):
            return SiteResponse.platformError(.badRequest, "Group name '\(group.name)' is already used.")
        }
    }

    /// `DELETE /rest/api/3/group?groupId=` (or `?groupname=`): removes the group and all its
    /// memberships, answering 200 with an empty body as Atlassian does; 404 for a group that does
    /// not exist, 400 when the query gives neither parameter or both. The name is free afterwards:
    /// creating it again makes a new group, with a new id. Atlassian's optional `swapGroup` and
    /// `swapGroupId` (a group to hand the removed group's permissions and restrictions to) are
    /// ignored: this site keeps no permissions or restrictions.
    func deleteGroup(_ request: Request, context: some RequestContext) async throws -> Response {
        guard let selector = GroupSelector(request.uri.queryParameters) else { return GroupSelector.refusal }
        guard let group = try await selector.group(in: store),
            try await store.deleteGroup(withId: group.groupId)
        else { return SiteResponse.platformError(.notFound, "Specified group does not exist.") }
        return Response(status: .ok)
    }

    /// `GET /rest/api/3/group/bulk?groupName=&groupId=`: the named groups (exact, case-insensitive).
    func findGroups(_ request: Request, context: some RequestContext) async throws -> Response {
        let parameters = request.uri.queryParameters
        var found: [SiteGroup] = []
        for name in parameters[values: "groupName"] {
            if let group = try await store.group(named: String(name)), !found.contains(group) { found.append(group) }
        }
        for id in parameters[values: "groupId"] {
            if let group = try await store.group(withId: String(id)), !found.contains(group) { found.append(group) }
        }
        let values = found.map { GroupPageBody.Details(name: $0.name, groupId: $0.groupId) }
        return SiteResponse.json(
            GroupPageBody(maxResults: 50, startAt: 0, total: values.count, isLast: true, values: values), status: .ok)
    }

    /// `POST /rest/api/3/group/user?groupId=` (or `?groupname=`): 400 for an existing member, as Jira does.
    func addGroupMember(_ request: Request, context: some RequestContext) async throws -> Response {
        guard let selector = GroupSelector(request.uri.queryParameters) else { return GroupSelector.refusal }
        var request = request
        let body = try await BodyProblem.decode(GroupMemberRequest.self, from: &request, limit: maxBodyBytes)
        guard let accountId = body.accountId, !accountId.isEmpty else {
            return SiteResponse.platformError(
                .badRequest, "The field 'accountId' is required.", errors: ["accountId": "required"])
        }
        let group = try await selector.group(in: store)
        guard let group else { return SiteResponse.platformError(.notFound, "Specified group does not exist.") }
        guard try await store.account(withId: accountId) != nil else {
            return SiteResponse.platformError(.notFound, "The user with account ID '\(accountId)' does not exist.")
        }
        switch try await store.addMember(accountId: accountId, groupId: group.groupId) {
        case .added:
            return SiteResponse.json(GroupBody(group, baseURL: baseURL(request)), status: .created)
        case .alreadyMember:
            return SiteResponse.platformError(
                .badRequest, "Cannot add user. User is already a member of '\(group.name)'")
        }
    }

    /// `GET /rest/api/3/group/member?groupId=|groupname=[&includeInactiveUsers=][&startAt=][&maxResults=]`:
    /// one page of the group's members in account creation order (Atlassian orders by user name,
    /// which it does not disclose), `maxResults` capped at 50 as Atlassian caps it; 404 for a group
    /// that does not exist. Every account of this site is active, so `includeInactiveUsers` changes nothing.
    func groupMembers(_ request: Request, context: some RequestContext) async throws -> Response {
        let parameters = request.uri.queryParameters
        guard let selector = GroupSelector(parameters) else { return GroupSelector.refusal }
        guard let paging = PageRequest(parameters, defaultSize: 50, limit: 50) else { return PageRequest.refusal }
        let group = try await selector.group(in: store)
        guard let group,
            let page = try await store.members(
                ofGroupId: group.groupId, startAt: paging.startAt, limit: paging.maxResults)
        else { return SiteResponse.platformError(.notFound, "Specified group does not exist.") }
        let base = baseURL(request)
        return SiteResponse.json(
            PageBody(
                path: base + "/rest/api/3/group/member?groupId=" + group.groupId, paging: paging, total: page.total,
                values: page.accounts.map { UserBody($0, baseURL: base, details: true) }),
            status: .ok)
    }

    // MARK: This site's own verification endpoints

    /// `GET /_local/v1/counts`: accounts per type, groups, memberships and Atlassian API requests received.
    func counts(_ request: Request, context: some RequestContext) async throws -> Response {
        let counts = try await store.counts()
        return SiteResponse.json(
            LocalCountsBody(
                site: "jsm-migrate cloud-site (local verification endpoint, not an Atlassian API)",
                accounts: .init(
                    atlassian: counts.atlassianAccounts, customer: counts.customerAccounts,
                    total: counts.atlassianAccounts + counts.customerAccounts),
                groups: counts.groups, groupMemberships: counts.groupMemberships, apiRequests: requests.value,
                injectedBurstFaults: burst.answered),
            status: .ok)
    }

    /// `POST /_local/v1/faults?failures=N&status=S[&mode=email|burst]` (local, for tests and drills,
    /// never an Atlassian API): by default the next customer email to come answers `S` (default 500)
    /// to its next `N` creations; `mode=burst` makes the next `N` Atlassian requests of any kind
    /// answer `S` (429 and 503 with `Retry-After: 1`), up to 100,000.
    func injectFaults(_ request: Request, context: some RequestContext) async throws -> Response {
        let parameters = request.uri.queryParameters
        let mode = parameters["mode"].map { String($0) } ?? "email"
        let most = mode == "burst" ? 100_000 : 1000
        guard mode == "email" || mode == "burst",
            let failures = parameters["failures"].flatMap({ Int(String($0)) }), (0...most).contains(failures),
            let status = Int(String(parameters["status"] ?? "500")), (400...599).contains(status)
        else {
            return SiteResponse.platformError(
                .badRequest, "Give mode=email|burst, failures=0...1000 (burst: 0...100000) and status=400...599.")
        }
        if mode == "burst" {
            burst.arm(failures: failures, status: status)
        } else {
            faults.arm(failures: failures, status: status)
        }
        return SiteResponse.platformError(
            .accepted, "Armed (\(mode)): \(failures) failure(s) answering \(status).")
    }

    /// `GET /_local/v1/accounts?cursor=&limit=`: accounts in creation order; `nextCursor` is null on the last page.
    func accounts(_ request: Request, context: some RequestContext) async throws -> Response {
        let parameters = request.uri.queryParameters
        let limit = parameters["limit"].flatMap { Int($0) } ?? 1000
        guard (1...10_000).contains(limit) else {
            return SiteResponse.platformError(.badRequest, "The query parameter 'limit' must be 1 to 10000.")
        }
        var after: Int64 = 0
        if let cursor = parameters["cursor"], !cursor.isEmpty {
            guard let value = Int64(cursor), value >= 0 else {
                return SiteResponse.platformError(
                    .badRequest, "The query parameter 'cursor' is not a cursor this site issued.")
            }
            after = value
        }
        let page = try await store.accounts(after: after, limit: limit)
        let next = page.count == limit ? page.last.map { String($0.sequence) } : nil
        return SiteResponse.json(
            LocalAccountPageBody(
                accounts: page.map {
                    .init(
                        accountId: $0.accountId, accountType: $0.type.rawValue, emailAddress: $0.email,
                        displayName: $0.displayName)
                },
                nextCursor: next),
            status: .ok)
    }
}

/// The group a route's `groupId=` or `groupname=` query names: exactly one of the two, as Jira's
/// group routes take them.
enum GroupSelector {
    /// By the group's id.
    case id(String)
    /// By its name (any case).
    case name(String)

    /// The selector, or `nil` when the query gives neither or both.
    init?(_ parameters: Parameters) {
        switch (parameters["groupId"].map(String.init), parameters["groupname"].map(String.init)) {
        case (let id?, nil): self = .id(id)
        case (nil, let name?): self = .name(name)
        default: return nil
        }
    }

    /// The answer to a query that gives neither or both.
    static var refusal: Response {
        SiteResponse.platformError(.badRequest, "Give exactly one of the query parameters 'groupId' and 'groupname'.")
    }

    /// The group it names in `store`, if there is one.
    func group(in store: any AccountStore) async throws -> SiteGroup? {
        switch self {
        case .id(let id): try await store.group(withId: id)
        case .name(let name): try await store.group(named: name)
        }
    }
}

/// The `startAt` and `maxResults` of a paged platform request.
struct PageRequest {
    let startAt: Int
    /// What the request asked for, capped at the endpoint's limit.
    let maxResults: Int

    /// The paging of `parameters`, or `nil` when `startAt` is not 0 or more or `maxResults` not 1 or more.
    init?(_ parameters: Parameters, defaultSize: Int, limit: Int) {
        let startAt = parameters["startAt"].map { Int($0) } ?? 0
        let requested = parameters["maxResults"].map { Int($0) } ?? defaultSize
        guard let startAt, startAt >= 0, let requested, requested >= 1 else { return nil }
        self.startAt = startAt
        maxResults = min(requested, limit)
    }

    /// The answer to a request whose paging is not valid.
    static var refusal: Response {
        SiteResponse.platformError(.badRequest, "startAt must be 0 or more and maxResults 1 or more.")
    }
}
