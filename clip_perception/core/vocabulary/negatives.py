"""The fixed bank of negative words for ``score_mode: neglabel`` when the operator gives none.

NegLabel (Jiang et al., ICLR 2024) mines its negatives from WordNet: words far from every label,
so a frame that shows none of the labels finds a negative that fits it better than any label.
This bank is a few hundred everyday nouns of many kinds (places, animals, plants, materials,
vehicles, food, tools, body, weather), enough for a CLIP trained on web images; a CLIP trained
on another world (the small CLIP of ``models/small_clip``) needs that world's words instead,
given with the ``negative_labels`` parameter. A label that also appears here is not its own
negative, nor is a word nearer a label than the bank's words are to each other (a synonym;
``core.scoring.negative_masks``), so the bank need not be curated against every label set.
"""
from __future__ import annotations

DEFAULT_NEGATIVE_LABELS = tuple("""
airplane ambulance anchor ant antelope apron aquarium arch armchair artichoke asparagus
avalanche avocado axe backpack bagel balcony balloon bamboo banana bandage banjo barn barrel
basket bat bathtub beach beard bee beetle bell bench bicycle billboard binoculars blanket
blender boat bonfire bookshelf boot bottle boulder bowl bracelet bread bridge broccoli broom
bucket buffalo bulldozer bus butterfly cabbage cactus cake camel candle canoe canyon carpet
carrot castle caterpillar cathedral cauliflower cave ceiling cello chainsaw cheese cherry
chess chimney church cliff clock cloud coat coconut coin comet compass coral corn cottage
cow crab crane crocodile crown cucumber curtain cushion dam deer desert dinosaur dolphin
donkey dragonfly drum duck eagle earring eel elephant envelope escalator falcon feather fence
fern fireworks flag flamingo flute fog forest fountain fox frog garlic giraffe glacier goat
goose gorilla grape grasshopper guitar hammer hamster harbor harp hedgehog helicopter helmet
hippo honey horse hurricane iceberg igloo island jaguar jellyfish kangaroo kayak kettle kite
koala ladder lake lantern lava lemon leopard lettuce lighthouse lightning lion lizard lobster
lotus mango maple marsh meadow microscope mountain mushroom necklace nest ocean octopus onion
orchid ostrich otter owl oyster palace palm panda parachute parrot peacock pelican penguin
piano pier pineapple pumpkin pyramid rabbit raccoon rainbow raven reef rhinoceros river
rocket saddle sailboat sand saxophone scarf scorpion seal shark sheep shipwreck skeleton
skyscraper sled snail snake snowman spider squirrel stadium starfish statue submarine
sunflower swamp swan sword tiger tomato tornado tortoise tractor trombone trumpet tulip
turtle umbrella vase violin volcano vulture waterfall watermelon whale windmill wolf zebra
""".split())
