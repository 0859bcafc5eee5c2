#include <gtest/gtest.h>
#include "core/status.h"
TEST(Smoke, Ok) { EXPECT_TRUE(ns::Status::OK().ok()); }
