import AsyncHTTPClient
import Foundation
import JSMCloud
import JSMDomain
import JSMLedger
import Logging
import NIOCore

/// What the cloud site holds for a migration's mappings, read from the site itself: `verify`'s
/// check that every `created` or `linked` mapping points at an account that exists with the
/// mapped type, and that the site holds at most one account per (email, account type).
public struct SiteAudit: Sendable, Hashable {
    /// How the site was read.
    public enum Method: Sendable, Hashable {
        /// The local site's own listing, `GET /_local/v1/accounts`, page by page.
        case localListing
        /// A site without that listing (a real Atlassian site): the mapped accounts looked up with
        /// `GET /rest/api/3/user/bulk`, ``bulkLookupSize`` at a time.
        case accountLookups
        /// Not checked, for the reason given; the verdict then does not claim the site matches.
        case skipped(reason: String)
    }

    /// How the site was read.
    public let method: Method
    /// Mapping rows of the migration that hold an account (`created` or `linked`).
    public let mappedAccounts: Int
    /// Of those, the rows whose account the site holds.
    public let foundAccounts: Int
    /// Of the found, the rows whose account has another type than the mapping says.
    public let wrongType: Int
    /// The first user keys whose account the site lacks.
    public let missingUserKeys: [String]
    /// The first user keys whose account has another type.
    public let wrongTypeUserKeys: [String]
    /// Accounts the site listed (`nil` when it was not listed).
    public let siteAccounts: Int?
    /// Accounts beyond the first of their (email, account type): the site should have none.
    public let duplicateAccounts: Int
    /// The first duplicate account ids (never their emails).
    public let duplicateAccountIds: [String]

    /// Whether the check ran and found nothing wrong.
    public var matches: Bool {
        if case .skipped = method { return false }
        return foundAccounts == mappedAccounts && wrongType == 0 && duplicateAccounts == 0
    }

    /// How many sample keys or ids each list keeps.
    public static let sampleSize = 5
    /// The most mapped accounts looked up on a site without a listing: 100,000 bulk requests; above
    /// it the site check is skipped (and verify does not claim the site matches).
    public static let lookupLimit = 5_000_000
    /// Account ids per `GET /rest/api/3/user/bulk` request.
    public static let bulkLookupSize = 50
    /// The local site's account listing (not an Atlassian endpoint).
    public static let localListingPath = "/_local/v1/accounts"
    /// Accounts per page of the local listing.
    public static let listingPageSize = 1_000

    /// Reads the site and compares it with the migration's mappings in `ledger`.
    ///
    /// Memory: the migration's mapped account ids, and while listing the (type, email) pairs the
    /// site holds; no account row is kept beyond that.
    ///
    /// - Parameter listingPath: the local listing's path; tests name one the site lacks to see
    ///   how a real Atlassian site is checked.
    public static func audit(
        ledger: Ledger, migrationId: String, site: SiteLocation, lookupLimit: Int = SiteAudit.lookupLimit,
        bulkLookupSize: Int = SiteAudit.bulkLookupSize, logger: Logger = Logger(label: "jsm.verify"),
        listingPath: String = SiteAudit.localListingPath
    ) async throws -> SiteAudit {
        let client = AtlassianCloudSite.makeHTTPClient(for: site.configuration)
        do {
            let reader = SiteReader(client: client, site: site, listingPath: listingPath)
            let audit = try await audit(
                ledger: ledger, migrationId: migrationId, reader: reader, lookupLimit: lookupLimit,
                bulkLookupSize: bulkLookupSize, logger: logger)
            try await client.shutdown()
            return audit
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    private static func audit(
        ledger: Ledger, migrationId: String, reader: SiteReader, lookupLimit: Int, bulkLookupSize: Int,
        logger: Logger
    ) async throws -> SiteAudit {
        let firstPage = try await reader.listingPage(cursor: nil)
        guard let firstPage else {
            let count = try await ledger.accountMappingCount(migrationId: migrationId)
            guard count <= lookupLimit else {
                return SiteAudit(
                    method: .skipped(
                        reason: "the site has no /_local/v1/accounts listing (a real Atlassian site) and the migration "
                            + "maps \(count) accounts, more than the \(lookupLimit) verify looks up"),
                    mappedAccounts: count, foundAccounts: 0, wrongType: 0, missingUserKeys: [], wrongTypeUserKeys: [],
                    siteAccounts: nil, duplicateAccounts: 0, duplicateAccountIds: [])
            }
            logger.info(
                "the site has no local listing; looking up the mapped accounts in bulk", metadata: ["count": "\(count)"]
            )
            return try await lookUp(
                ledger: ledger, migrationId: migrationId, reader: reader, bulkSize: bulkLookupSize)
        }
        var expected = try await expectedAccounts(ledger: ledger, migrationId: migrationId)
        let mapped = expected.values.reduce(0) { $0 + $1.userKeys.count }
        var found = 0
        var wrongType = 0
        var wrongTypeKeys: [String] = []
        var listed = 0
        var seen = Set<String>()
        var duplicates = 0
        var duplicateIds: [String] = []
        var page = firstPage
        var pages = 0
        // Bounded: at most a billion accounts' worth of pages, and the cursor must move on every page.
        while pages < 1_000_000 {
            pages += 1
            for account in page.accounts {
                listed += 1
                let type = CloudAccountType(rawValue: account.accountType)
                if let mapping = expected.removeValue(forKey: account.accountId) {
                    found += mapping.userKeys.count
                    if type != mapping.type {
                        wrongType += mapping.userKeys.count
                        wrongTypeKeys += mapping.userKeys.prefix(sampleSize - min(sampleSize, wrongTypeKeys.count))
                    }
                }
                let email = account.emailAddress.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
                if !seen.insert(account.accountType + " " + email).inserted {
                    duplicates += 1
                    if duplicateIds.count < sampleSize { duplicateIds.append(account.accountId) }
                }
            }
            guard let cursor = page.nextCursor else { break }
            guard let next = try await reader.listingPage(cursor: cursor) else {
                throw PipelineError(
                    .invalidState, "the site stopped serving /_local/v1/accounts in the middle of a listing")
            }
            if next.nextCursor == cursor {
                throw PipelineError(.invalidState, "the site's /_local/v1/accounts cursor does not advance")
            }
            page = next
        }
        let missingKeys = Array(expected.values.flatMap(\.userKeys).sorted().prefix(sampleSize))
        return SiteAudit(
            method: .localListing, mappedAccounts: mapped, foundAccounts: found, wrongType: wrongType,
            missingUserKeys: missingKeys, wrongTypeUserKeys: wrongTypeKeys.sorted(), siteAccounts: listed,
            duplicateAccounts: duplicates, duplicateAccountIds: duplicateIds)
    }

    /// A mapped account: its type and the user keys mapped to it (several when merged).
    struct ExpectedAccount {
        var type: CloudAccountType?
        var userKeys: [String]
    }

    /// The migration's `created` and `linked` mappings by account id, read page by page.
    private static func expectedAccounts(ledger: Ledger, migrationId: String) async throws -> [String: ExpectedAccount]
    {
        var expected: [String: ExpectedAccount] = [:]
        var after: String? = nil
        let pageSize = 10_000
        // Bounded: each page starts after the last key of the previous one, and a short page ends it.
        while true {
            let page = try await ledger.accountMappings(migrationId: migrationId, afterUserKey: after, limit: pageSize)
            for mapping in page {
                guard let accountId = mapping.accountId else { continue }
                expected[accountId, default: ExpectedAccount(type: mapping.accountType, userKeys: [])].userKeys.append(
                    mapping.userKey)
            }
            guard page.count == pageSize, let last = page.last?.userKey else { break }
            after = last
        }
        return expected
    }

    /// Looks the mapped accounts up on a site without a listing, `bulkSize` ids per request and a
    /// bounded number of requests at a time.
    private static func lookUp(ledger: Ledger, migrationId: String, reader: SiteReader, bulkSize: Int) async throws
        -> SiteAudit
    {
        var expected = try await expectedAccounts(ledger: ledger, migrationId: migrationId)
        let mapped = expected.values.reduce(0) { $0 + $1.userKeys.count }
        let requests = expected.keys.sorted().chunked(bulkSize).map(Array.init)
        let width = max(1, min(16, reader.site.maxConcurrentRequests))
        var foundRows = 0
        var wrongType = 0
        var wrongTypeKeys: [String] = []
        // Per (account type, email): the smallest account id; every other is a duplicate.
        var owners: [String: String] = [:]
        var duplicateIds: [String] = []
        // Each answer is checked as it arrives and only its findings are kept: at 1M mapped accounts,
        // keeping the answers until the end had peaked at 1.08 GB.
        func check(_ users: [SiteReader.User]) {
            for user in users {
                // The site answers only for ids it was asked about; any other is not counted as found.
                guard let mapping = expected.removeValue(forKey: user.accountId) else { continue }
                foundRows += mapping.userKeys.count
                if CloudAccountType(rawValue: user.accountType ?? "") != mapping.type {
                    wrongType += mapping.userKeys.count
                    wrongTypeKeys += mapping.userKeys
                }
                guard let email = user.emailAddress?.trimmingCharacters(in: .whitespacesAndNewlines).lowercased(),
                    !email.isEmpty
                else { continue }
                let key = (user.accountType ?? "") + " " + email
                guard let owner = owners[key] else {
                    owners[key] = user.accountId
                    continue
                }
                duplicateIds.append(max(owner, user.accountId))
                owners[key] = min(owner, user.accountId)
            }
        }
        try await requests.boundedConcurrentForEach(limit: width, { try await reader.users(accountIds: $0) }) {
            check($0)
        }
        let missingKeys = expected.values.flatMap(\.userKeys)
        duplicateIds.sort()
        return SiteAudit(
            method: .accountLookups, mappedAccounts: mapped, foundAccounts: foundRows, wrongType: wrongType,
            missingUserKeys: Array(missingKeys.sorted().prefix(sampleSize)),
            wrongTypeUserKeys: Array(wrongTypeKeys.sorted().prefix(sampleSize)), siteAccounts: nil,
            duplicateAccounts: duplicateIds.count, duplicateAccountIds: Array(duplicateIds.prefix(sampleSize)))
    }
}

/// The two read-only requests `verify` makes of a site, with basic auth and waits on 429 and 503.
struct SiteReader: Sendable {
    let client: HTTPClient
    let site: SiteLocation
    let listingPath: String

    /// One page of `GET /_local/v1/accounts`.
    struct ListingPage: Decodable {
        struct Account: Decodable {
            let accountId: String
            let accountType: String
            let emailAddress: String
        }

        let accounts: [Account]
        let nextCursor: String?
    }

    /// The fields of Atlassian's `User` that verify reads.
    struct User: Decodable, Sendable {
        let accountId: String
        let accountType: String?
        let emailAddress: String?
    }

    /// A listing page, or `nil` when the site has no listing (404).
    func listingPage(cursor: String?) async throws -> ListingPage? {
        var query = "limit=\(SiteAudit.listingPageSize)"
        if let cursor {
            query += "&cursor=" + (cursor.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")
        }
        let (status, body) = try await get(listingPath, query: query)
        if status == 404 { return nil }
        guard status == 200 else { throw failure("GET \(listingPath)", status: status) }
        return try decode(ListingPage.self, body, path: "GET \(listingPath)")
    }

    /// One page of Atlassian's `PageBeanUser`.
    struct UserPage: Decodable {
        let values: [User]
        let isLast: Bool?
    }

    /// The accounts among `accountIds` the site holds, from `GET /rest/api/3/user/bulk`, page by
    /// page; an id the site lacks is left out of its answer.
    func users(accountIds: [String]) async throws -> [User] {
        let path = "/rest/api/3/user/bulk"
        let ids = accountIds.map {
            "accountId=" + ($0.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? $0)
        }.joined(separator: "&")
        var users: [User] = []
        // Bounded: every page but the last holds at least one account, and there are at most
        // `accountIds.count` of them.
        for _ in 0...accountIds.count {
            let (status, body) = try await get(
                path, query: ids + "&maxResults=\(accountIds.count)&startAt=\(users.count)")
            guard status == 200 else { throw failure("GET \(path)", status: status) }
            let page = try decode(UserPage.self, body, path: "GET \(path)")
            users += page.values
            if page.isLast ?? true || page.values.isEmpty { return users }
        }
        throw PipelineError(.invalidState, "\(site) answered GET \(path) with more pages than account ids")
    }

    private func get(_ path: String, query: String) async throws -> (Int, ByteBuffer) {
        var request = HTTPClientRequest(url: site.baseURL + path + "?" + query)
        request.method = .GET
        let credentials = Data("\(site.userEmail):\(site.apiToken)".utf8).base64EncodedString()
        request.headers.add(name: "Authorization", value: "Basic " + credentials)
        request.headers.add(name: "Accept", value: "application/json")
        var attempt = 0
        // Bounded: at most five attempts, waiting out throttling between them.
        while true {
            attempt += 1
            let response: HTTPClientResponse
            do {
                response = try await client.execute(request, timeout: .seconds(30))
            } catch {
                throw PipelineError(.invalidState, "cannot reach \(site): \(error)")
            }
            let body = try await response.body.collect(upTo: 16 << 20)
            let status = Int(response.status.code)
            guard status == 429 || status == 503, attempt < 5 else { return (status, body) }
            let wait =
                response.headers.first(name: "Retry-After").flatMap(Int.init).map { min(max($0, 1), 30) } ?? attempt
            try await Task.sleep(for: .seconds(wait))
        }
    }

    private func decode<Value: Decodable>(_ type: Value.Type, _ body: ByteBuffer, path: String) throws -> Value {
        do {
            return try JSONDecoder().decode(type, from: Data(body.readableBytesView))
        } catch {
            throw PipelineError(.invalidState, "\(site) answered \(path) with a body verify cannot read: \(error)")
        }
    }

    private func failure(_ path: String, status: Int) -> PipelineError {
        let hint =
            switch status {
            case 401, 403: " (check --site-email and the API token)"
            default: ""
            }
        return PipelineError(.invalidState, "\(site) answered \(path) with HTTP \(status)\(hint)")
    }
}
