// The rate and favoured-policy flag table of config/tax_rules.h. Messages cite the spec
// sections so an operator can look the rule up.
#include "config/tax_rules.h"

#include <algorithm>
#include <array>
#include <span>

#include "value_rules.h"

namespace lanegate::config {
namespace {

constexpr std::string_view kRatesSection =
    "specs/e-invoice.md \"Tax classification codes and rates\"";
constexpr std::string_view kFlagSection = "specs/e-invoice.md \"Favoured-policy flag\"";
constexpr std::string_view kApiSection = "specs/e-invoice.md \"Invoicing platform API\"";

struct Row {
  std::string_view service;
  Taxpayer taxpayer;
  int rate;
  std::array<std::string_view, 3> flags;
  std::size_t flag_count;
  std::string_view default_flag;
  bool survey;  // small-scale at 1 % / 3 %: surveyAnswerType is required
};

// The table of config/tax_rules.h, without rate 0 (any service, any seller, 03 or 04).
constexpr std::array<Row, 7> kRows = {{
    {"parking", Taxpayer::kGeneral, 9, {""}, 1, "", false},
    {"parking", Taxpayer::kGeneral, 5, {"09", "01"}, 2, "09", false},
    {"taxi", Taxpayer::kGeneral, 9, {""}, 1, "", false},
    {"taxi", Taxpayer::kGeneral, 3, {"08", "01"}, 2, "08", false},
    {"parking", Taxpayer::kSmallScale, 5, {"", "01", "09"}, 3, "", false},
    {"taxi", Taxpayer::kSmallScale, 3, {"", "01", "08"}, 3, "", true},
    {"taxi", Taxpayer::kSmallScale, 1, {"", "01"}, 2, "", true},
}};

const Row* find_row(std::string_view service, int rate, Taxpayer taxpayer) {
  for (const Row& row : kRows) {
    if (row.service == service && row.rate == rate && row.taxpayer == taxpayer) {
      return &row;
    }
  }
  return nullptr;
}

// Flag meanings from the spec's table, for messages.
std::string_view flag_meaning(std::string_view flag) {
  static constexpr std::array<std::string_view, 19> kMeanings = {"",
                                                                 "简易征收",
                                                                 "稀土产品",
                                                                 "免税",
                                                                 "不征税",
                                                                 "先征后退",
                                                                 "100%先征后退",
                                                                 "50%先征后退",
                                                                 "按3%简易征收",
                                                                 "按5%简易征收",
                                                                 "按5%简易征收减按1.5%计征",
                                                                 "即征即退30%",
                                                                 "即征即退50%",
                                                                 "即征即退70%",
                                                                 "即征即退100%",
                                                                 "超税负3%即征即退",
                                                                 "超税负8%即征即退",
                                                                 "超税负12%即征即退",
                                                                 "超税负6%即征即退"};
  if (flag.size() != 2 || flag[0] < '0' || flag[0] > '1' || flag[1] < '0' || flag[1] > '9') {
    return {};
  }
  const int n = (flag[0] - '0') * 10 + (flag[1] - '0');
  return n >= 1 && n <= 18 ? kMeanings[static_cast<std::size_t>(n)] : std::string_view{};
}

// "09 (按5%简易征收)", or "\"\" (none)".
std::string flag_text(std::string_view flag) {
  if (flag.empty()) {
    return "\"\" (none)";
  }
  std::string_view meaning = flag_meaning(flag);
  return meaning.empty() ? "\"" + std::string(flag) + "\""
                         : std::string(flag) + " (" + std::string(meaning) + ")";
}

std::string_view taxpayer_words(Taxpayer t) {
  return t == Taxpayer::kGeneral ? "a general taxpayer" : "a small-scale taxpayer";
}

// "9 or 5" for the rows of one service and seller.
std::string rates_of(std::string_view service, Taxpayer taxpayer) {
  std::vector<int> rates;
  for (const Row& row : kRows) {
    if (row.service == service && row.taxpayer == taxpayer) {
      rates.push_back(row.rate);
    }
  }
  std::string out;
  for (std::size_t i = 0; i < rates.size(); ++i) {
    out += i == 0 ? "" : (i + 1 == rates.size() ? " or " : ", ");
    out += std::to_string(rates[i]);
  }
  return out;
}

std::string rate_problem(std::string_view service, int rate, Taxpayer taxpayer) {
  std::string rule = std::string(service) + " rates are " + rates_of(service, taxpayer) + " for " +
                     std::string(taxpayer_words(taxpayer)) +
                     " (or 0 with flag 03 免税 / 04 不征税), got " + std::to_string(rate) + " (" +
                     std::string(kRatesSection) + ")";
  const Taxpayer other =
      taxpayer == Taxpayer::kGeneral ? Taxpayer::kSmallScale : Taxpayer::kGeneral;
  if (find_row(service, rate, other) != nullptr) {
    rule += "; " + std::to_string(rate) + "% is " + std::string(taxpayer_words(other)) +
            "'s rate: set [invoicing] taxpayer = \"" + std::string(to_string(other)) +
            "\" if the seller is one";
  }
  return rule;
}

bool is_flag_shape(std::string_view flag) { return flag.empty() || !flag_meaning(flag).empty(); }

// Flags that some parking or taxi row (or rate 0) may carry.
bool is_pairable_flag(std::string_view flag) {
  for (std::string_view f : {"", "01", "03", "04", "08", "09"}) {
    if (flag == f) {
      return true;
    }
  }
  return false;
}

bool is_zero_rate_flag(std::string_view flag) { return flag == "03" || flag == "04"; }

constexpr std::string_view kSurveyValues =
    "\"1\" (the liability arose before 2022-04-01), \"2\" (correcting or reversing an earlier "
    "invoice) or \"3\" (waiving the exemption)";

}  // namespace

std::string_view to_string(Taxpayer taxpayer) {
  return taxpayer == Taxpayer::kGeneral ? "general" : "small_scale";
}

std::string default_favoured_policy_flag(std::string_view service, int rate_percent,
                                         Taxpayer taxpayer) {
  const Row* row = find_row(service, rate_percent, taxpayer);
  return row != nullptr ? std::string(row->default_flag) : std::string();
}

std::vector<TaxRuleProblem> tax_rule_problems(const TaxRule& rule, Taxpayer taxpayer) {
  std::vector<TaxRuleProblem> out;
  if (rule.service == "toll") {
    out.push_back({"service",
                   std::string(kTollInvoiceElsewhere) +
                       ": remove this rule; receipts still show the trip and point the "
                       "passenger there",
                   true});
    return out;
  }
  if (rule.service != "taxi" && rule.service != "parking") {
    out.push_back({"service",
                   "must be one of: taxi, parking (got " + detail::quoted(rule.service) + ")",
                   true});
    return out;
  }
  const std::string& flag = rule.favoured_policy_flag;
  const std::string& survey = rule.survey_answer_type;
  const int rate = rule.rate_percent;
  // Judged on its own: a flag no parking or taxi line can carry, a survey answer of no
  // meaning. Pairing checks below only look at flags and answers that passed.
  bool flag_ok = true;
  if (!is_flag_shape(flag)) {
    out.push_back({"favoured_policy_flag",
                   "must be \"\" or a two-digit flag 01..18 (got " + detail::quoted(flag) + "; " +
                       std::string(kFlagSection) + ")",
                   true});
    flag_ok = false;
  } else if (!is_pairable_flag(flag)) {
    out.push_back({"favoured_policy_flag",
                   "no parking or taxi rate is paired with flag " + flag_text(flag) + " in " +
                       std::string(kFlagSection),
                   true});
    flag_ok = false;
  }
  bool survey_ok = true;
  if (!survey.empty() && survey != "1" && survey != "2" && survey != "3") {
    out.push_back({"survey_answer_type",
                   "must be " + std::string(kSurveyValues) + " (got " + detail::quoted(survey) +
                       "; surveyAnswerType, " + std::string(kApiSection) + ")",
                   true});
    survey_ok = false;
  }
  const std::string survey_elsewhere =
      "only a small-scale seller at 1% or 3% states surveyAnswerType: remove survey_answer_type "
      "from this rule (" +
      std::string(kApiSection) + ")";
  if (rate == 0) {
    if (flag_ok && !is_zero_rate_flag(flag)) {
      out.push_back(
          {"favoured_policy_flag", "rate_percent = 0 needs flag 03 (免税) or 04 (不征税), got " +
                                       flag_text(flag) + " (" + std::string(kFlagSection) + ")"});
    }
    if (survey_ok && !survey.empty()) {
      out.push_back({"survey_answer_type", survey_elsewhere});
    }
    return out;
  }
  if (flag_ok && is_zero_rate_flag(flag)) {
    out.push_back({"favoured_policy_flag",
                   "flag " + flag_text(flag) + " goes with rate_percent = 0 only, got " +
                       std::to_string(rate) + " (" + std::string(kFlagSection) + ")"});
    flag_ok = false;
  }
  const Row* row = find_row(rule.service, rate, taxpayer);
  if (row == nullptr) {
    out.push_back({"rate_percent", rate_problem(rule.service, rate, taxpayer)});
    return out;  // flag and survey pair with a rate: judging them against a wrong one misleads
  }
  const auto allowed = std::span(row->flags).first(row->flag_count);
  if (flag_ok && std::ranges::find(allowed, flag) == allowed.end()) {
    if (row->taxpayer == Taxpayer::kGeneral && row->rate == 9) {
      out.push_back(
          {"favoured_policy_flag", "never a flag with the general " + std::to_string(rate) +
                                       "% rate: remove favoured_policy_flag (got " +
                                       flag_text(flag) + "; " + std::string(kFlagSection) + ")"});
    } else {
      std::string list;
      for (std::size_t i = 0; i < allowed.size(); ++i) {
        list += i == 0 ? "" : (i + 1 == allowed.size() ? " or " : ", ");
        list += flag_text(allowed[i]);
        if (allowed[i] == row->default_flag && !row->default_flag.empty()) {
          list.insert(list.size() - 1, ", the default");  // "09 (按5%简易征收, the default)"
        }
      }
      out.push_back({"favoured_policy_flag",
                     rule.service + " at " + std::to_string(rate) + "% for " +
                         std::string(taxpayer_words(taxpayer)) + " takes flag " + list + ", got " +
                         flag_text(flag) + " (" + std::string(kFlagSection) +
                         "; which flag the platform wants is unconfirmed: check the first "
                         "sandbox issue)"});
    }
  }
  if (row->survey && survey.empty()) {
    out.push_back({"survey_answer_type",
                   "required for a small-scale seller at 1% or 3% (surveyAnswerType): " +
                       std::string(kSurveyValues) + " (" + std::string(kApiSection) + ")"});
  } else if (!row->survey && survey_ok && !survey.empty()) {
    out.push_back({"survey_answer_type", survey_elsewhere});
  }
  return out;
}

}  // namespace lanegate::config
