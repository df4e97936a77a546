// `currant db install | upgrade | status` against a real database.
#include "daemon_support.hpp"

#include <cstdio>

using namespace currant;
using namespace currant::daemon_test;

namespace {

struct Run {
    int status;
    std::string output;
};

Run currant_cli(const std::vector<std::string>& arguments) {
    const std::string output_file = testing::shared_postgres().directory() + "/cli-output.txt";
    std::remove(output_file.c_str());
    std::vector<std::string> argv = {std::getenv("CURRANT_CLI")};
    argv.insert(argv.end(), arguments.begin(), arguments.end());
    const int status = testing::run_program(argv, output_file);
    std::ifstream in(output_file);
    std::stringstream text;
    text << in.rdbuf();
    return {status, text.str()};
}

std::string fresh_database(const std::string& tag) {
    std::string name = "cli_" + tag + "_" + std::to_string(getpid());
    return testing::shared_postgres().create_database(name);
}

} // namespace

TEST_CASE("db status exits 1 before install and 0 after it", "[db]") {
    const std::string db = fresh_database("status");
    const Run before = currant_cli({"db", "status", "--db", db});
    CHECK(before.status == 1);
    CHECK_THAT(before.output, Catch::Contains("installed version: 0"));
    const Run install = currant_cli({"db", "install", "--db", db});
    CHECK(install.status == 0);
    CHECK_THAT(install.output, Catch::Contains("installed currant schema version"));
    CHECK(currant_cli({"db", "status", "--db", db}).status == 0);
}

TEST_CASE("db install on an installed database is refused with one line and changes nothing", "[db]") {
    const std::string db = fresh_database("twice");
    REQUIRE(currant_cli({"db", "install", "--db", db}).status == 0);
    const Run again = currant_cli({"db", "install", "--db", db});
    CHECK(again.status == 1);
    CHECK(again.output == "currant: currant schema version " + std::to_string(schema::current_version()) +
                              " is installed already; use `currant db upgrade`\n");
    const Run upgrade = currant_cli({"db", "upgrade", "--db", db});
    CHECK(upgrade.status == 0);
    CHECK_THAT(upgrade.output, Catch::Contains("nothing to do"));
}

TEST_CASE("db upgrade from every earlier schema version reaches the current one and keeps the rows", "[db]") {
    for (int from = 1; from < schema::current_version(); ++from) {
        CAPTURE(from);
        const std::string db = fresh_database("from_v" + std::to_string(from));
        {
            pg::Connection connection(db);
            schema::install(connection, from);
            connection.exec("INSERT INTO currant_jobs (host, entrypoint, payload, dedupe_key) VALUES (3, 'e', 'p', 'k')");
        }
        CHECK(currant_cli({"db", "status", "--db", db}).status == 1);
        const Run upgrade = currant_cli({"db", "upgrade", "--db", db});
        CHECK(upgrade.status == 0);
        pg::Connection connection(db);
        CHECK(schema::installed_version(connection) == schema::current_version());
        const pg::Result row = connection.exec("SELECT dedupe_key, on_duplicate FROM currant_jobs WHERE host = 3");
        REQUIRE(row.rows() == 1);
        CHECK(row.text(0, 0) == "k");
        CHECK(row.text(0, 1) == "skip"); // step 2's default
        CHECK(connection.exec("SELECT count(*) FROM currant_schedules").integer(0, 0) == 0); // step 3's table
        CHECK(connection.exec("SELECT count(*) FROM information_schema.columns WHERE table_name = 'currant_results' "
                              "AND column_name = 'payload'")
                  .integer(0, 0) == 1); // step 7's column
        CHECK(currant_cli({"db", "status", "--db", db}).status == 0);
    }
}

TEST_CASE("installing a schema version this build does not know is refused", "[db]") {
    const std::string db = fresh_database("unknown_version");
    pg::Connection connection(db);
    CHECK_THROWS_WITH(schema::install(connection, schema::current_version() + 1),
                      Catch::Contains("this build knows versions 1 to"));
    CHECK(schema::installed_version(connection) == 0);
}

TEST_CASE("db upgrade on an empty database says to install first", "[db]") {
    const std::string db = fresh_database("upgrade");
    const Run upgrade = currant_cli({"db", "upgrade", "--db", db});
    CHECK(upgrade.status == 1);
    CHECK_THAT(upgrade.output, Catch::Contains("currant db install"));
}

TEST_CASE("a connection failure names the problem but never the password", "[db]") {
    const Run failed = currant_cli(
        {"db", "status", "--db", "host=/nonexistent-socket-dir port=5432 user=someone password=s3cret-word"});
    CHECK(failed.status == 1);
    CHECK_THAT(failed.output, Catch::Contains("cannot connect to PostgreSQL"));
    CHECK_THAT(failed.output, !Catch::Contains("s3cret-word"));
}
