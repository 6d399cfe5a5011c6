#include "fluxlit/observability/metrics.hpp"

#include <gtest/gtest.h>

#include <string>

namespace fluxlit::observability {
namespace {

// Returns the value of the sample line that starts with `prefix` (name and labels), or -1.
double sample(const std::string& text, const std::string& prefix) {
  const auto at = text.find(prefix + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + prefix.size() + 1));
}

TEST(MetricsTest, CountsByRouteAndClass) {
  metrics counted;
  counted.count_request("api", 200);
  counted.count_request("api", 204);
  counted.count_request("api", 404);
  counted.count_request("ui", 200);
  counted.count_request("local", 431);
  counted.count_request("local", 499);
  const auto text = counted.serialize();
  EXPECT_EQ(sample(text, R"(fluxlit_requests_total{route="api",status="2xx"})"), 2);
  EXPECT_EQ(sample(text, R"(fluxlit_requests_total{route="api",status="4xx"})"), 1);
  EXPECT_EQ(sample(text, R"(fluxlit_requests_total{route="ui",status="2xx"})"), 1);
  EXPECT_EQ(sample(text, R"(fluxlit_requests_total{route="local",status="4xx"})"), 2);
  EXPECT_EQ(sample(text, R"(fluxlit_requests_total{route="ui",status="4xx"})"), -1);
}

TEST(MetricsTest, CountsUnknownRoute) {
  metrics counted;
  counted.count_request("other", 503);
  counted.count_request("other", 500);
  EXPECT_EQ(sample(counted.serialize(), R"(fluxlit_requests_total{route="other",status="5xx"})"),
            2);
}

TEST(MetricsTest, InstancesCountSeparately) {
  metrics first;
  metrics second;
  first.count_request("api", 200);
  EXPECT_EQ(sample(second.serialize(), R"(fluxlit_requests_total{route="api",status="2xx"})"),
            -1);
}

}  // namespace
}  // namespace fluxlit::observability
