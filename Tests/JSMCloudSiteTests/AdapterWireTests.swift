import Foundation
import JSMDomain
import NIOCore
import Testing

@testable import JSMCloud
@testable import JSMCloudSite

/// The adapter's hand-written hot path: user answers read without `JSONDecoder`, query values
/// percent-encoded by hand, the answer size limit and the Retry-After wait. Each is checked against
/// Foundation's own behaviour or against the real local site.
@Suite("Adapter wire code")
struct AdapterWireTests {
    private let decoder = JSONDecoder()

    /// What `JSONDecoder` makes of `text` as `Value`, or `nil` when it refuses it.
    private func decoded<Value: Decodable>(_ type: Value.Type, _ text: String) -> Value? {
        try? decoder.decode(type, from: Data(text.utf8))
    }

    /// Bodies the reader must take, each as `JSONDecoder` reads it.
    static let plainUsers = [
        #"{"accountId":"qm:1","accountType":"customer","emailAddress":"a@example.com"}"#,
        #"{"self":"http://h/rest/api/3/user?accountId=5b10","accountId":"5b10","accountType":"atlassian","#
            + #""emailAddress":"b@example.com","avatarUrls":{"48x48":"http://h/a.png"},"displayName":"Bé 日本 🙂","#
            + #""active":true,"timeZone":"Etc/UTC","locale":"en_US","n":-12.5e+3,"z":0,"list":[1,[],{},null,false]}"#,
        #"  { "accountId" : "x" , "emailAddress" : null }  "#,
        #"{"accountId":"only"}"#,
        #"{"accountId":"","accountType":"app","_links":{"jiraRest":"http://h/rest/api/2/user?accountId=1"}}"#,
    ]

    /// Bodies the reader must leave to `JSONDecoder` (some it decodes, some it refuses).
    static let otherUsers = [
        #"{"accountId":"q\"m","emailAddress":"a@example.com"}"#,  // an escape in a wanted member
        #"{"accountId":"qm","displayName":"O\"Brien"}"#,  // an escape elsewhere
        #"{"accountId":"qm","accountId":"other"}"#,  // a duplicate wanted member
        #"{"accountId":7}"#,  // the wrong type
        #"{"accountId":null}"#,  // null where a string is required
        #"{"emailAddress":"a@example.com"}"#,  // no accountId
        #"{}"#,
        #"{"accountId":"qm"} x"#,  // trailing text
        #"{"accountId":"qm""#,  // truncated
        #"{"accountId":"qm","n":01}"#,  // a malformed number
        #"{"accountId":"qm","n":1.}"#,
        #"{"accountId":"qm","b":tru}"#,  // a malformed literal
        #"{"accountId":"qm",}"#,  // a trailing comma
        #"{"accountId":"qm","tab":"a"# + "\t" + #"b"}"#,  // a raw control character
        #"{"accountId":"qm","deep":"# + String(repeating: "[", count: 40) + String(repeating: "]", count: 40) + "}",
        #"["not an object"]"#,
    ]

    @Test("the user reader agrees with JSONDecoder on every answer it takes, and takes the site's own")
    func plainUsersReadAsJSONDecoderReadsThem() throws {
        var bodies = Self.plainUsers
        let account = SiteAccount(
            sequence: 1, accountId: "qm:7f1c", type: .atlassian, email: "z@example.com", displayName: "Zoë")
        bodies.append(String(buffer: JSONWriter.text(of: JSMCloudSite.UserBody(account, baseURL: "http://h:1"))))
        bodies.append(String(buffer: JSONWriter.text(of: CustomerBody(account, baseURL: "http://h:1"))))
        for body in bodies {
            let expected = try #require(decoded(JSMCloud.UserBody.self, body), "\(body)")
            #expect(UserAnswerReader.user(in: ByteBuffer(string: body)) == expected, "\(body)")
        }
        let array = "[" + bodies.joined(separator: ",") + "]"
        let expected = try #require(decoded([JSMCloud.UserBody].self, array))
        #expect(UserAnswerReader.users(in: ByteBuffer(string: array)) == expected)
        #expect(UserAnswerReader.users(in: ByteBuffer(string: " [ ] ")) == [])
    }

    @Test("the user reader gives up on escapes, duplicates, wrong types and malformed text")
    func otherUsersAreLeftToJSONDecoder() {
        for body in Self.otherUsers {
            #expect(UserAnswerReader.user(in: ByteBuffer(string: body)) == nil, "\(body)")
            #expect(UserAnswerReader.users(in: ByteBuffer(string: "[" + body + "]")) == nil, "\(body)")
        }
        #expect(UserAnswerReader.user(in: ByteBuffer()) == nil && UserAnswerReader.users(in: ByteBuffer()) == nil)
        // Invalid UTF-8 (an overlong "/", a lone continuation byte, a surrogate, a code point past
        // U+10FFFF) is refused, not decoded.
        for bad: [UInt8] in [[0xC0, 0xAF], [0x80], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80]] {
            var buffer = ByteBuffer(string: #"{"accountId":"a"#)
            buffer.writeBytes(bad)
            buffer.writeString(#""}"#)
            #expect(UserAnswerReader.user(in: buffer) == nil, "\(bad)")
        }
        // The escaped bodies JSONDecoder can read are still read: the fallback keeps them working.
        #expect(decoded(JSMCloud.UserBody.self, Self.otherUsers[0])?.accountId == "q\"m")
    }

    @Test("query values are percent-encoded exactly as Foundation does for RFC 3986 unreserved characters")
    func percentEncoding() {
        var unreserved = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
        unreserved.insert(charactersIn: "0123456789-._~")
        for value in ["a.b-c_d~e@example.com", "", "plus+sign&and=eq", "é 日本 🙂", "100%", "jira-servicedesk-users"] {
            #expect(
                AtlassianCloudSite.percentEncoded(value)
                    == value.addingPercentEncoding(withAllowedCharacters: unreserved),
                "\(value)")
        }
    }

    @Test("an answer larger than the limit is an unexpected response, not retriable, and counted")
    func answerOverTheLimit() async throws {
        try await SiteHarness.withSite(.sqlite) { site in
            var configuration = site.adapterConfiguration()
            configuration.maxResponseBytes = 64
            try await AtlassianCloudSite.withSite(configuration: configuration) { adapter in
                let error = await #expect(throws: CloudSiteError.self) {
                    _ = try await adapter.createCustomer(
                        email: NormalizedEmail("large@example.com")!, displayName: "A name long enough")
                }
                #expect(error?.code == .unexpectedResponse)
                #expect(error?.isRetriable == false)
                #expect(error?.path == "POST /rest/servicedeskapi/customer")
                #expect(adapter.metrics.snapshot.permanentFailures == 1)
            }
        }
    }

    @Test("a 429's Retry-After is waited out before the next attempt, which then succeeds")
    func retryAfterIsHonoured() async throws {
        // One request per 4 s: the second creation meets an empty bucket even on a loaded machine
        // (at 1/s a first creation slower than a second let the bucket refill and no 429 came).
        try await SiteHarness.withSite(.sqlite, requestsPerSecond: 0.25, burst: 1) { site in
            try await site.withAdapter { adapter in
                let first = try await adapter.createCustomer(
                    email: NormalizedEmail("first@example.com")!, displayName: "First")
                let started = ContinuousClock.now
                let second = try await adapter.createCustomer(
                    email: NormalizedEmail("second@example.com")!, displayName: "Second")
                let waited = started.duration(to: .now)
                #expect(first.isCreated && second.isCreated)
                let metrics = adapter.metrics.snapshot
                #expect(metrics.throttledResponses >= 1)
                #expect(metrics.failures == 0)
                // The site asks for whole seconds, so the second creation cannot end sooner.
                #expect(waited >= .milliseconds(900))
            }
        }
    }
}
