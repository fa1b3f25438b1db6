//! A local HTTP server standing in for a web API in tests (price list, release downloads):
//! one request per connection, answered by a handler from its request line.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

/// Serves on a free loopback port; `answer(method, target)` gives the whole response (status
/// line, headers, body). Returns the port.
pub fn serve(answer: impl Fn(&str, &str) -> Vec<u8> + Send + 'static) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
            }
            let mut words = line.split_whitespace();
            let method = words.next().unwrap_or("GET").to_string();
            let target = words.next().unwrap_or("/").to_string();
            let _ = stream.write_all(&answer(&method, &target));
        }
    });
    port
}

/// A response with `status` (`200 OK`), `content-type` and `body`.
pub fn response(status: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}
