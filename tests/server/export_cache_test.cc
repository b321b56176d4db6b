#include "server/core/export_cache.h"

#include "gtest/gtest.h"

namespace mgreg {
namespace {

std::shared_ptr<const CachedExport> Entry(size_t size) {
  auto e = std::make_shared<CachedExport>();
  e->bytes.assign(size, 'x');
  return e;
}

TEST(ExportCacheTest, CountsHitsAndMisses) {
  ExportCache cache(100);
  EXPECT_EQ(cache.Lookup("a"), nullptr);
  cache.Insert("a", Entry(10));
  EXPECT_NE(cache.Lookup("a"), nullptr);
  EXPECT_EQ(cache.hits(), 1);
  EXPECT_EQ(cache.misses(), 1);
  EXPECT_EQ(cache.bytes(), 10u);
}

TEST(ExportCacheTest, EvictsLeastRecentlyUsedToStayWithinItsBytes) {
  ExportCache cache(100);
  cache.Insert("a", Entry(40));
  cache.Insert("b", Entry(40));
  ASSERT_NE(cache.Lookup("a"), nullptr);  // b is now the least recent
  cache.Insert("c", Entry(40));
  EXPECT_NE(cache.Lookup("a"), nullptr);
  EXPECT_EQ(cache.Lookup("b"), nullptr);
  EXPECT_NE(cache.Lookup("c"), nullptr);
  EXPECT_LE(cache.bytes(), 100u);
}

TEST(ExportCacheTest, DoesNotCacheEntriesLargerThanItsCapacity) {
  ExportCache cache(10);
  cache.Insert("big", Entry(11));
  EXPECT_EQ(cache.Lookup("big"), nullptr);
  EXPECT_EQ(cache.bytes(), 0u);
}

TEST(ExportCacheTest, ZeroCapacityDisablesCaching) {
  ExportCache cache(0);
  cache.Insert("a", Entry(1));
  EXPECT_EQ(cache.Lookup("a"), nullptr);
}

}  // namespace
}  // namespace mgreg
