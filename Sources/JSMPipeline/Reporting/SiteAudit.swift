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
    /// Memory: one page of mappings (``mappingPageSize``) or of the listing at a time, and one
    /// bucket of a ``VerifyScratch`` when comparing: the listed accounts, the mapped accounts and
    /// the (type, email) pairs go to scratch files as they are read.
    ///
    /// - Parameters:
    ///   - listingPath: the local listing's path; tests name one the site lacks to see how a real
    ///     Atlassian site is checked.
    ///   - mappingPageSize, scratchBuckets: tests make them small to cross their boundaries.
    public static func audit(
        ledger: Ledger, migrationId: String, site: SiteLocation, lookupLimit: Int = SiteAudit.lookupLimit,
        bulkLookupSize: Int = SiteAudit.bulkLookupSize, logger: Logger = Logger(label: "jsm.verify"),
        listingPath: String = SiteAudit.localListingPath, mappingPageSize: Int = SiteAudit.mappingPageSize,
        scratchBuckets: Int? = nil
    ) async throws -> SiteAudit {
        let client = AtlassianCloudSite.makeHTTPClient(for: site.configuration)
        do {
            let reader = SiteReader(client: client, site: site, listingPath: listingPath)
            let audit = try await VerifyScratch.with(bucketCount: scratchBuckets ?? VerifyScratch.defaultBuckets) {
                scratch in
                var audit = Audit(
                    ledger: ledger, migrationId: migrationId, reader: reader, scratch: scratch,
                    pageSize: max(1, mappingPageSize))
                return try await audit.run(lookupLimit: lookupLimit, bulkLookupSize: bulkLookupSize, logger: logger)
            }
            try await client.shutdown()
            return audit
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    /// Mapping rows read from the ledger at a time.
    public static let mappingPageSize = 10_000

    /// One audit's reads and tallies.
    private struct Audit {
        let ledger: Ledger
        let migrationId: String
        let reader: SiteReader
        let pageSize: Int
        /// Per account id: the site's account (side 0: its type) and the mappings to it (side 1:
        /// the mapped type, the user key).
        var accounts: KeyedRecords
        /// Per (account type, email): the ids of the site's accounts (side 0).
        var emails: KeyedRecords
        var mapped = 0
        var found = 0
        var wrongType = 0
        var missingKeys = SmallestValues(limit: sampleSize)
        var wrongTypeKeys = SmallestValues(limit: sampleSize)
        var duplicates = 0
        var duplicateIds = SmallestValues(limit: sampleSize)

        static let siteSide: UInt8 = 0
        static let mappingSide: UInt8 = 1

        init(ledger: Ledger, migrationId: String, reader: SiteReader, scratch: VerifyScratch, pageSize: Int) {
            self.ledger = ledger
            self.migrationId = migrationId
            self.reader = reader
            self.pageSize = pageSize
            accounts = scratch.records("accounts")
            emails = scratch.records("emails")
        }

        mutating func run(lookupLimit: Int, bulkLookupSize: Int, logger: Logger) async throws -> SiteAudit {
            guard let firstPage = try await reader.listingPage(cursor: nil) else {
                let count = try await ledger.accountMappingCount(migrationId: migrationId)
                guard count <= lookupLimit else {
                    return SiteAudit(
                        method: .skipped(
                            reason: "the site has no /_local/v1/accounts listing (a real Atlassian site) and the "
                                + "migration maps \(count) accounts, more than the \(lookupLimit) verify looks up"),
                        mappedAccounts: count, foundAccounts: 0, wrongType: 0, missingUserKeys: [],
                        wrongTypeUserKeys: [], siteAccounts: nil, duplicateAccounts: 0, duplicateAccountIds: [])
                }
                logger.info(
                    "the site has no local listing; looking up the mapped accounts in bulk",
                    metadata: ["count": "\(count)"])
                try await lookUp(bulkSize: bulkLookupSize)
                try countDuplicates()
                return result(.accountLookups, listed: nil)
            }
            let listed = try await list(from: firstPage)
            var cursor = MappingCursor()
            while let mappings = try await nextMappings(&cursor) {
                for mapping in mappings {
                    guard let accountId = mapping.accountId else { continue }
                    try accounts.append(
                        accountId, side: Self.mappingSide, mapping.accountType?.rawValue ?? "", mapping.userKey)
                }
            }
            try accounts.finish()
            for bucket in 0..<accounts.bucketCount {
                for (_, records) in try accounts.records(inBucket: bucket) {
                    let account = records.first { $0.side == Self.siteSide }
                    for mapping in records where mapping.side == Self.mappingSide {
                        tally(
                            userKey: mapping.fields.count > 1 ? mapping.fields[1] : "",
                            mappedType: mapping.fields.first ?? "", siteType: account.map { $0.fields.first ?? "" })
                    }
                }
            }
            try countDuplicates()
            return result(.localListing, listed: listed)
        }

        /// Writes every account of the local listing to `accounts` and `emails`; returns how many.
        private mutating func list(from firstPage: SiteReader.ListingPage) async throws -> Int {
            var listed = 0
            var page = firstPage
            var pages = 0
            // Bounded: at most a billion accounts' worth of pages, and the cursor must move on every page.
            while pages < 1_000_000 {
                pages += 1
                for account in page.accounts {
                    listed += 1
                    try accounts.append(account.accountId, side: Self.siteSide, account.accountType)
                    try recordEmail(account.emailAddress, type: account.accountType, accountId: account.accountId)
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
            return listed
        }

        /// Looks each page's mapped accounts up on a site without a listing, `bulkSize` ids per
        /// request and a bounded number of requests at a time.
        private mutating func lookUp(bulkSize: Int) async throws {
            let width = max(1, min(16, reader.site.maxConcurrentRequests))
            let reader = self.reader
            var cursor = MappingCursor()
            while let mappings = try await nextMappings(&cursor) {
                let asked = Set(mappings.compactMap(\.accountId))
                var answered: [String: SiteReader.User] = [:]
                try await asked.sorted().chunked(bulkSize).map(Array.init).boundedConcurrentForEach(
                    limit: width, { try await reader.users(accountIds: $0) }
                ) { users in
                    // The site answers only for ids it was asked about; any other is not counted as found.
                    for user in users where answered[user.accountId] == nil && asked.contains(user.accountId) {
                        answered[user.accountId] = user
                    }
                }
                for mapping in mappings {
                    guard let accountId = mapping.accountId else { continue }
                    tally(
                        userKey: mapping.userKey, mappedType: mapping.accountType?.rawValue ?? "",
                        siteType: answered[accountId].map { $0.accountType ?? "" })
                }
                // An account answered on two pages (several keys merged into it) is written twice;
                // the duplicate count reads distinct ids.
                for user in answered.values {
                    try recordEmail(user.emailAddress ?? "", type: user.accountType ?? "", accountId: user.accountId)
                }
            }
        }

        /// Where the reading of the mappings stands.
        struct MappingCursor {
            var after: String? = nil
            var done = false
        }

        /// The next page of the migration's mappings that hold an account, `nil` once all are read.
        /// Bounded: each page starts after the last key of the previous one, and a short page ends it.
        private mutating func nextMappings(_ cursor: inout MappingCursor) async throws -> [MappingRecord]? {
            guard !cursor.done else { return nil }
            let page = try await ledger.accountMappings(
                migrationId: migrationId, afterUserKey: cursor.after, limit: pageSize)
            cursor.after = page.last?.userKey
            cursor.done = page.count < pageSize || cursor.after == nil
            mapped += page.filter { $0.accountId != nil }.count
            return page.isEmpty ? nil : page
        }

        /// Counts one mapping row (its user key and mapped type) against the site's account (its
        /// type), `nil` when the site lacks it.
        private mutating func tally(userKey: String, mappedType: String, siteType: String?) {
            guard let siteType else {
                missingKeys.offer(userKey)
                return
            }
            found += 1
            if CloudAccountType(rawValue: siteType) != CloudAccountType(rawValue: mappedType) {
                wrongType += 1
                wrongTypeKeys.offer(userKey)
            }
        }

        private mutating func recordEmail(_ address: String, type: String, accountId: String) throws {
            let email = address.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
            guard !email.isEmpty else { return }
            try emails.append(type + " " + email, side: Self.siteSide, accountId)
        }

        /// Per (type, email), every account id but the smallest is a duplicate.
        private mutating func countDuplicates() throws {
            try emails.finish()
            for bucket in 0..<emails.bucketCount {
                for (_, records) in try emails.records(inBucket: bucket) where records.count > 1 {
                    let ids = Set(records.compactMap(\.fields.first)).sorted()
                    duplicates += ids.count - 1
                    for id in ids.dropFirst() { duplicateIds.offer(id) }
                }
            }
        }

        private func result(_ method: Method, listed: Int?) -> SiteAudit {
            SiteAudit(
                method: method, mappedAccounts: mapped, foundAccounts: found, wrongType: wrongType,
                missingUserKeys: missingKeys.values, wrongTypeUserKeys: wrongTypeKeys.values, siteAccounts: listed,
                duplicateAccounts: duplicates, duplicateAccountIds: duplicateIds.values)
        }
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
