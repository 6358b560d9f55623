-- classes: hand-worked ABC, quantile, RFM and XYZ cases (exact output)
-- ABC: total 115; s = share held by strictly greater values; A if s < 0.80, B if s < 0.95
SELECT v, crm.abc_class(v) OVER () AS abc,
       round(coalesce((SELECT sum(x) FROM (VALUES (50.0), (30), (15), (15), (5)) y(x) WHERE x > t.v), 0) / 115 + 0 * t.v, 4) AS s
  FROM (VALUES (50.0), (30), (15), (15), (5), (NULL), (0), (-3)) t(v)
 ORDER BY v DESC NULLS LAST;
-- exact boundaries: s = 0.80 is B, s = 0.95 is C; the crossing item keeps its class
SELECT g, v, crm.abc_class(v) OVER (PARTITION BY g) AS abc
  FROM (VALUES (1, 0.80), (1, 0.15), (1, 0.05), (2, 70), (2, 20), (2, 10), (3, 99), (3, 1)) t(g, v)
 ORDER BY g, v DESC;
-- quantile_score = 1 + floor(buckets * below / n), ties share the lowest member's score
SELECT v, crm.quantile_score(v) OVER () AS q5, crm.quantile_score(v, 3) OVER () AS q3,
       ntile(5) OVER (ORDER BY v) AS ntile5
  FROM (VALUES (1), (1), (1), (1), (1), (1), (2), (3), (4), (5), (NULL)) t(v)
 ORDER BY v NULLS LAST;
-- the RFM grid
SELECT r, string_agg(crm.rfm_segment(r, f), ' | ' ORDER BY f) AS "F1 | F2 | F3 | F4 | F5"
  FROM generate_series(5, 1, -1) r, generate_series(1, 5) f
 GROUP BY r ORDER BY r DESC;
-- XYZ: demand per period [2,0,2,0] -> cv 1; [3,3,3,3] -> 0; [4,5,4,5] -> 1/9
SELECT item, crm.demand_cv(q, p, 4) AS cv, crm.xyz_class(crm.demand_cv(q, p, 4)) AS xyz
  FROM (VALUES ('a', 1.0, 1), ('a', 1, 1), ('a', 2, 3), ('b', 3, 1), ('b', 3, 2), ('b', 3, 3), ('b', 3, 4),
               ('c', 4, 1), ('c', 5, 2), ('c', 4, 3), ('c', 5, 4)) t(item, q, p)
 GROUP BY item ORDER BY item;
-- errors: no function name in the message, the context line names the function
SELECT crm.abc_class(v, 0.9, 0.8) OVER () FROM (VALUES (1.0)) t(v);
SELECT crm.demand_cv(1, 13, 12);
SELECT '3:1,2'::crm.demand_cv_state;
