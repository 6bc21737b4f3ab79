//! Edge nodes on a shared PostgreSQL (issue 16). So far: the throwaway
//! database the cluster tests run against.
#![allow(missing_docs)]

mod util;

use util::pg::Pg;

#[test]
fn a_throwaway_postgresql_starts_answers_stops_and_comes_back() {
    let pg = match Pg::start() {
        Ok(pg) => pg,
        Err(why) => panic!("PostgreSQL for the cluster tests: {why}"),
    };
    assert_eq!(pg.psql("SELECT 40 + 2").unwrap(), "42");
    pg.psql("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('before')")
        .unwrap();
    // The database goes away (as its host would) and comes back with its
    // data, on the same port.
    pg.set_running(false).unwrap();
    assert!(pg.psql("SELECT 1").is_err(), "answered while stopped");
    pg.set_running(true).unwrap();
    assert_eq!(pg.psql("SELECT v FROM kept").unwrap(), "before");
    let port = pg.port;
    drop(pg);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "still listening after drop"
    );
}
