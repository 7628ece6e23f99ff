import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The cheapest client that still makes real HTTP/1.1 requests: `connections` keep-alive sockets
/// driven by one thread with `poll(2)`, one request in flight per connection, requests written from
/// prebuilt bytes and answers read only as far as the status line and `Content-Length`.
///
/// Client and site share the machine's cores, so every microsecond the client spends is one the
/// site cannot: this loop, like `wrk`, leaves nearly all the CPU to the site, which makes its
/// figure the site's own capacity. The `HTTPClient` loop and the adapter are measured beside it.
struct SocketLoad: Sendable {
    /// Why a run stopped early.
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// A run's figures.
    struct Outcome: Sendable {
        /// Requests answered 201.
        let created: Int
        /// Wall time from the first request to the last answer.
        let seconds: Double
    }

    let host: String
    let port: Int
    let authorization: String

    /// Reads `http://HOST:PORT` (the only form the benchmark needs); `nil` for anything else.
    init?(baseURL: String, authorization: String) {
        guard baseURL.hasPrefix("http://") else { return nil }
        var rest = baseURL.dropFirst("http://".count)
        if let slash = rest.firstIndex(of: "/") { rest = rest[..<slash] }
        guard let colon = rest.lastIndex(of: ":"), let port = Int(rest[rest.index(after: colon)...]) else {
            return nil
        }
        self.host = String(rest[..<colon])
        self.port = port
        self.authorization = authorization
    }

    /// Runs on a thread of its own, so the blocking `poll` never holds a cooperative-pool thread.
    func run(count: Int, connections: Int, emailPrefix: String, timeLimit: Duration = .seconds(600))
        async throws -> Outcome
    {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Outcome, any Error>) in
            let thread = Thread {
                continuation.resume(
                    with: Result {
                        try runBlocking(
                            count: count, connections: connections, emailPrefix: emailPrefix, timeLimit: timeLimit)
                    })
            }
            thread.name = "socket-load"
            thread.start()
        }
    }

    private struct Connection {
        let descriptor: Int32
        var output: [UInt8] = []
        var written = 0
        var input: [UInt8] = []
    }

    private func request(email: String) -> [UInt8] {
        let body = #"{"email":"\#(email)","displayName":"Bench"}"#
        let head =
            "POST /rest/servicedeskapi/customer?strictConflictStatusCode=true HTTP/1.1\r\n"
            + "Host: \(host):\(port)\r\nAuthorization: \(authorization)\r\n"
            + "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n"
        return Array((head + body).utf8)
    }

    private func runBlocking(count: Int, connections: Int, emailPrefix: String, timeLimit: Duration) throws -> Outcome {
        var pool: [Connection] = []
        defer { for connection in pool { close(connection.descriptor) } }
        for _ in 0..<max(1, min(connections, count)) { pool.append(Connection(descriptor: try connect())) }
        var pollSet = pool.map { pollfd(fd: $0.descriptor, events: Int16(POLLIN), revents: 0) }
        var sent = 0
        var created = 0
        var answered = 0
        var scratch = [UInt8](repeating: 0, count: 65_536)
        let start = ContinuousClock.now
        let deadline = start + timeLimit

        func issue(_ index: Int) throws {
            pool[index].output = request(email: "\(emailPrefix)-\(sent)@bench.example.com")
            pool[index].written = 0
            sent += 1
            try flush(index)
        }
        func flush(_ index: Int) throws {
            while pool[index].written < pool[index].output.count {
                let written = pool[index].output.withUnsafeBytes { bytes in
                    write(
                        pool[index].descriptor, bytes.baseAddress! + pool[index].written,
                        bytes.count - pool[index].written)
                }
                if written < 0 {
                    guard errno == EAGAIN || errno == EWOULDBLOCK else {
                        throw Failure(description: "write failed: errno \(errno)")
                    }
                    break
                }
                pool[index].written += written
            }
            let pending = pool[index].written < pool[index].output.count
            pollSet[index].events = Int16(POLLIN) | (pending ? Int16(POLLOUT) : 0)
        }

        for index in pool.indices { try issue(index) }
        // Each pass either handles at least one ready socket or times out; the deadline bounds it.
        while answered < count {
            guard ContinuousClock.now < deadline else {
                throw Failure(description: "only \(answered) of \(count) answers within \(timeLimit)")
            }
            let ready = poll(&pollSet, nfds_t(pollSet.count), 1_000)
            if ready < 0 {
                if errno == EINTR { continue }
                throw Failure(description: "poll failed: errno \(errno)")
            }
            guard ready > 0 else { continue }
            for index in pollSet.indices where pollSet[index].revents != 0 {
                let events = pollSet[index].revents
                pollSet[index].revents = 0
                if events & Int16(POLLOUT) != 0 { try flush(index) }
                guard events & (Int16(POLLIN) | Int16(POLLHUP) | Int16(POLLERR)) != 0 else { continue }
                let received = scratch.withUnsafeMutableBytes {
                    read(pool[index].descriptor, $0.baseAddress!, $0.count)
                }
                if received < 0 {
                    if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { continue }
                    throw Failure(description: "read failed: errno \(errno)")
                }
                guard received > 0 else { throw Failure(description: "the site closed a connection") }
                pool[index].input.append(contentsOf: scratch[0..<received])
                // Every complete answer in the buffer (normally exactly one).
                while let (status, length) = Self.answer(in: pool[index].input) {
                    pool[index].input.removeFirst(length)
                    guard status == 201 else { throw Failure(description: "a creation was answered \(status)") }
                    created += 1
                    answered += 1
                    if sent < count { try issue(index) }
                }
            }
        }
        let elapsed = ContinuousClock.now - start
        return Outcome(
            created: created,
            seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
    }

    /// A complete answer at the start of `input`: its status and its length (head and body), or
    /// `nil` while it is incomplete. Only `Content-Length` framing is read: the site sends no chunks.
    static func answer(in input: [UInt8]) -> (status: Int, length: Int)? {
        input.withUnsafeBufferPointer { bytes -> (Int, Int)? in
            guard bytes.count >= 16 else { return nil }
            var headEnd = -1
            var index = 3
            while index < bytes.count {
                if bytes[index] == 0x0A, bytes[index - 1] == 0x0D, bytes[index - 2] == 0x0A, bytes[index - 3] == 0x0D {
                    headEnd = index + 1
                    break
                }
                index += 1
            }
            guard headEnd > 0 else { return nil }
            // "HTTP/1.1 201 ..."
            var status = 0
            for offset in 9..<12 { status = status * 10 + Int(bytes[offset] &- UInt8(ascii: "0")) }
            let name: StaticString = "content-length:"
            var contentLength = 0
            var lineStart = 0
            while lineStart < headEnd {
                var lineEnd = lineStart
                while lineEnd < headEnd, bytes[lineEnd] != 0x0A { lineEnd += 1 }
                let matches = name.withUTF8Buffer { expected in
                    lineEnd - lineStart > expected.count
                        && (0..<expected.count).allSatisfy { bytes[lineStart + $0] | 0x20 == expected[$0] | 0x20 }
                }
                if matches {
                    var cursor = lineStart + name.utf8CodeUnitCount
                    while cursor < lineEnd, bytes[cursor] == UInt8(ascii: " ") { cursor += 1 }
                    while cursor < lineEnd, bytes[cursor] >= UInt8(ascii: "0"), bytes[cursor] <= UInt8(ascii: "9") {
                        contentLength = contentLength * 10 + Int(bytes[cursor] - UInt8(ascii: "0"))
                        cursor += 1
                    }
                    break
                }
                lineStart = lineEnd + 1
            }
            guard bytes.count >= headEnd + contentLength else { return nil }
            return (status, headEnd + contentLength)
        }
    }

    /// A connected, non-blocking TCP socket with Nagle off (requests are written whole).
    private func connect() throws -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_INET
        #if canImport(Glibc)
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        #else
            hints.ai_socktype = SOCK_STREAM
        #endif
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &result) == 0, let address = result else {
            throw Failure(description: "cannot resolve \(host):\(port)")
        }
        defer { freeaddrinfo(result) }
        let descriptor = socket(address.pointee.ai_family, address.pointee.ai_socktype, address.pointee.ai_protocol)
        guard descriptor >= 0 else { throw Failure(description: "socket failed: errno \(errno)") }
        #if canImport(Glibc)
            let connected = Glibc.connect(descriptor, address.pointee.ai_addr, address.pointee.ai_addrlen)
        #else
            let connected = Darwin.connect(descriptor, address.pointee.ai_addr, address.pointee.ai_addrlen)
        #endif
        guard connected == 0 else {
            close(descriptor)
            throw Failure(description: "cannot connect to \(host):\(port): errno \(errno)")
        }
        var on: Int32 = 1
        _ = setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
        return descriptor
    }
}
