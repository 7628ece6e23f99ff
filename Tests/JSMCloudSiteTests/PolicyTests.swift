import JSMCloud
import JSMCloudSite
import Testing

/// The pure parts: Retry-After, the backoff, the token bucket and the seed file formats.
@Suite("Retry, rate and seed rules")
struct PolicyTests {
    @Test("Retry-After is read as seconds or as an HTTP date, and garbage is ignored")
    func retryAfter() {
        #expect(RetryAfter.parse("7", now: 0) == .seconds(7))
        #expect(RetryAfter.parse(" 0 ", now: 0) == .seconds(0))
        // Sun, 06 Nov 1994 08:49:37 GMT is 784111777 seconds after 1970.
        #expect(RetryAfter.parse("Sun, 06 Nov 1994 08:49:37 GMT", now: 784_111_770) == .seconds(7))
        #expect(RetryAfter.parse("Sun, 06 Nov 1994 08:49:37 GMT", now: 784_111_800) == .zero)
        #expect(RetryAfter.parse("soon", now: 0) == nil)
        #expect(RetryAfter.parse("-3", now: 0) == nil)
        #expect(RetryAfter.parse(nil, now: 0) == nil)
    }

    @Test("the wait is never shorter than Retry-After and grows with attempts up to the cap")
    func backoff() {
        var policy = ThrottleRetryPolicy()
        policy.initialBackoff = .milliseconds(100)
        policy.maxBackoff = .seconds(2)
        for attempt in 1...12 {
            let delay = policy.delay(afterAttempt: attempt, retryAfter: .seconds(1))
            #expect(delay >= .seconds(1))
            #expect(delay <= .milliseconds(2_200))
        }
        let early = policy.delay(afterAttempt: 1, retryAfter: nil)
        #expect(early >= .milliseconds(50) && early <= .milliseconds(110))
        let late = policy.delay(afterAttempt: 10, retryAfter: nil)
        #expect(late >= .seconds(1))
    }

    @Test("the token bucket admits its burst, then says how long to wait")
    func tokenBucket() {
        let limiter = RateLimiter(rate: 100, burst: 5)
        let start = ContinuousClock.now
        let admitted = (0..<10).filter { _ in limiter.admit(now: start) == nil }.count
        #expect(admitted == 5)
        let wait = limiter.admit(now: start)
        #expect(wait != nil && wait! <= .milliseconds(10))
        #expect(limiter.admit(now: start + .milliseconds(20)) == nil)
        #expect(RateLimiter.parseRate("2000/s") == 2000)
        #expect(RateLimiter.parseRate("600/m") == 10)
        #expect(RateLimiter.parseRate("fast") == nil)
    }

    @Test("seed files: CSV with quotes and JSON Lines; a bad line is reported by number")
    func seedFiles() throws {
        let csv = try SeedAccounts.parse(
            "a@example.com,\"Lee, \"\"Al\"\"\",customer\nB@Example.com,Bo,ATLASSIAN\n", fileName: "s.csv")
        #expect(csv.map(\.displayName) == ["Lee, \"Al\"", "Bo"])
        #expect(csv.map(\.email.value) == ["a@example.com", "b@example.com"])
        #expect(csv.map(\.type) == [.customer, .atlassian])
        let lines = try SeedAccounts.parse(
            #"{"email":"c@example.com","displayName":"Cy","accountType":"customer"}"# + "\n", fileName: "s.jsonl")
        #expect(lines.map(\.email.value) == ["c@example.com"])
        #expect(throws: SeedAccounts.Problem.self) {
            try SeedAccounts.parse("ok@example.com,Ok,customer\nbad,Bad,customer\n", fileName: "s.csv")
        }
        do {
            _ = try SeedAccounts.parse("ok@example.com,Ok,customer\nx@example.com,X,robot\n", fileName: "s.csv")
            Issue.record("a bad account type was accepted")
        } catch let problem as SeedAccounts.Problem {
            #expect(problem.line == 2)
        }
    }
}
