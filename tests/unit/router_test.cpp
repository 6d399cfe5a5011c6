#include "fluxlit/gateway/router.hpp"

#include <gtest/gtest.h>

namespace fluxlit::gateway {
namespace {

const route_table plain{"/api", ""};
const route_table mounted{"/api", "/tools/app"};

TEST(RouterTest, ApiPathLosesPrefix) {
  const auto result = route_target(plain, "/api/users?limit=2");
  EXPECT_EQ(result.kind, route_kind::api);
  EXPECT_EQ(result.path, "/users");
  EXPECT_EQ(result.query, "limit=2");
}

TEST(RouterTest, BarePrefixIsAppRoot) {
  const auto result = route_target(plain, "/api");
  EXPECT_EQ(result.kind, route_kind::api);
  EXPECT_EQ(result.path, "/");
}

TEST(RouterTest, PrefixMatchesWholeSegmentsOnly) {
  const auto result = route_target(plain, "/apiary/index.html");
  EXPECT_EQ(result.kind, route_kind::ui);
  EXPECT_EQ(result.path, "/apiary/index.html");
}

TEST(RouterTest, NativeEndpointsUnderPrefix) {
  EXPECT_EQ(route_target(plain, "/api/healthz").kind, route_kind::native_health);
  EXPECT_EQ(route_target(plain, "/api/readyz").kind, route_kind::native_ready);
  EXPECT_EQ(route_target(plain, "/api/metrics").kind, route_kind::native_metrics);
  EXPECT_EQ(route_target(plain, "/healthz").kind, route_kind::ui);
}

TEST(RouterTest, UiKeepsPathAndQuery) {
  const auto result = route_target(plain, "/_stcore/stream?x=1");
  EXPECT_EQ(result.kind, route_kind::ui);
  EXPECT_EQ(result.path, "/_stcore/stream?x=1");
}

TEST(RouterTest, DocsRedirectUnderPrefix) {
  const auto result = route_target(plain, "/docs");
  EXPECT_EQ(result.kind, route_kind::redirect);
  EXPECT_EQ(result.redirect_status, 307);
  EXPECT_EQ(result.location, "/api/docs");
  EXPECT_EQ(route_target(plain, "/openapi.json").location, "/api/openapi.json");
  EXPECT_EQ(route_target(mounted, "/tools/app/redoc").location, "/tools/app/api/redoc");
}

TEST(RouterTest, RootPathWithoutSlashRedirects) {
  const auto result = route_target(mounted, "/tools/app?embed=true");
  EXPECT_EQ(result.kind, route_kind::redirect);
  EXPECT_EQ(result.redirect_status, 308);
  EXPECT_EQ(result.location, "/tools/app/?embed=true");
}

TEST(RouterTest, FullPathUnderRootPath) {
  const auto api = route_target(mounted, "/tools/app/api/users");
  EXPECT_EQ(api.kind, route_kind::api);
  EXPECT_EQ(api.path, "/users");
  const auto ui = route_target(mounted, "/tools/app/static/js/main.js");
  EXPECT_EQ(ui.kind, route_kind::ui);
  EXPECT_EQ(ui.path, "/tools/app/static/js/main.js");
}

TEST(RouterTest, StrippedPathGetsRootPathUpstream) {
  const auto api = route_target(mounted, "/api/users");
  EXPECT_EQ(api.kind, route_kind::api);
  EXPECT_EQ(api.path, "/users");
  const auto ui = route_target(mounted, "/_stcore/health");
  EXPECT_EQ(ui.kind, route_kind::ui);
  EXPECT_EQ(ui.path, "/tools/app/_stcore/health");
}

TEST(RouterTest, PercentEncodingStaysInPath) {
  const auto result = route_target(plain, "/api/files/a%2Fb%20c");
  EXPECT_EQ(result.path, "/files/a%2Fb%20c");
  EXPECT_EQ(percent_decode(result.path), "/files/a/b c");
}

TEST(PercentDecodeTest, InvalidEscapesStay) {
  EXPECT_EQ(percent_decode("%zz%4"), "%zz%4");
  EXPECT_EQ(percent_decode("caf%C3%A9"), "caf\xC3\xA9");
  EXPECT_EQ(percent_decode("%"), "%");
}

}  // namespace
}  // namespace fluxlit::gateway
